"""GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018).

Learnable task weights w_t (starting at 1) multiply the task losses. At each step,
with G_t = ||grad_W w_t weight_t L_t|| the norm of task t's weighted gradient of the
weights W of the last shared layer, L~_t = L_t / L_t(0) its loss relative to the first
step's and r_t = L~_t / mean_j L~_j its relative inverse training rate, the weights
follow the gradient of

    L_grad = sum_t | G_t - mean_j(G_j) r_t^alpha |

with the target mean_j(G_j) r_t^alpha held constant, so dL_grad/dw_t =
sign(G_t - target_t) G_t / w_t; then they are renormalised to sum to T (and kept above
a small floor so none vanishes). The network's step uses the weights from before this
update. W defaults to the last weight matrix (a parameter of two or more dimensions)
among the network's shared parameters, in registration order (the experts' or the
shared bottom's last layer: gates and towers are per-task); pass ``layer`` to pick
another (a parameter name, e.g. ``"experts.layers.0.weight"``). It needs each task's
gradient of W: an autograd step with one backward per task through the shared part.

A batch without labels of some tasks updates the present tasks only: the means run
over them, L_t(0) is a task's loss the first time a batch carries it, and the present
weights are renormalised to the sum they had, the absent ones left as they were.
"""

from __future__ import annotations

import math

import torch

from ..exceptions import ConfigError
from .base import BALANCERS, Balancer, SmallAdam

#: smallest weight kept after an update (before renormalising)
_FLOOR = 1e-3


@BALANCERS.register("gradnorm", rank=30)
class GradNorm(Balancer):
    """Task weights that equalise the tasks' gradient norms at the last shared layer,
    scaled by their relative training rates.

    Args:
        alpha: strength of the pull towards the training rates (the paper's 1.5).
        lr: learning rate of the weights (default: the fit's).
        layer: name of the shared parameter W (default: the last shared weight matrix).
    """

    gradient_level = True

    def __init__(self, alpha: float = 1.5, lr: float | None = None, layer: str | None = None):
        if not isinstance(alpha, int | float) or alpha < 0:
            raise ConfigError(f"gradnorm: alpha must be a number >= 0, got {alpha!r}")
        self.alpha, self.lr, self.layer = float(alpha), lr, layer

    def start(self, weights: torch.Tensor, lr: float = 1e-3, seed: int = 0) -> None:
        super().start(weights, lr, seed)
        self._w = torch.ones_like(weights)  # w_t, summing to T
        self._current = self._w.clone()
        self._optimizer = SmallAdam(self._w, self.lr or lr)
        self.initial_losses: torch.Tensor | None = None  # L_t(0)

    def gradient_parameters(self, network) -> list[torch.nn.Parameter]:
        shared = {id(p) for p in network.shared_parameters()}
        named = [(n, p) for n, p in network.named_parameters() if id(p) in shared]
        if self.layer is not None:
            chosen = [p for n, p in named if n == self.layer]
            if not chosen:
                raise ConfigError(
                    f"gradnorm: layer {self.layer!r} is not a shared parameter of this "
                    f"network; choose one of {[n for n, _ in named]}"
                )
            return chosen
        matrices = [p for n, p in named if n.endswith("weight") and p.dim() >= 2]
        if not matrices:
            raise ConfigError("gradnorm: the network has no shared weight matrix")
        return matrices[-1:]

    def multipliers(self) -> torch.Tensor:
        return self._current

    def autograd_reason(self) -> str:
        return f"the balancer {self.name!r} needs each task's gradient norm at a shared layer"

    def targets(
        self, norms: torch.Tensor, losses: torch.Tensor, present: torch.Tensor | None = None
    ) -> torch.Tensor:
        """mean_j(G_j) r_t^alpha (T,) for the norms G_t and the mean losses L_t (T,) over
        the tasks ``present`` (all by default; the others' entries are meaningless); a
        task's first loss is its L(0)."""
        seen = torch.ones_like(losses, dtype=torch.bool) if present is None else present
        if self.initial_losses is None:
            self.initial_losses = torch.full_like(losses, math.nan)
        first = seen & torch.isnan(self.initial_losses)
        self.initial_losses = torch.where(first, losses, self.initial_losses)
        relative = torch.where(seen, losses / self.initial_losses.clamp_min(1e-12), 0.0)
        count = seen.sum().clamp_min(1)
        rates = relative / (relative.sum() / count).clamp_min(1e-12)
        mean_norm = torch.where(seen, norms, 0.0).sum() / count
        return mean_norm * rates.pow(self.alpha)

    def gradient(
        self, grads: torch.Tensor, losses: torch.Tensor, present: torch.Tensor | None = None
    ) -> torch.Tensor:
        """dL_grad/dw (T,) from the tasks' gradients of W (T, P) (of w_t weight_t L_t)
        and their mean losses (T,); 0 for a task not ``present``."""
        norms = grads.norm(dim=1)  # G_t
        grad = torch.sign(norms - self.targets(norms, losses, present)) * norms / self._w
        return grad if present is None else grad * present

    def combine(self, grads, losses, present=None) -> None:
        self.record(self._current * self.weights, present)
        w = self._w
        total = w.sum() if present is None else (w * present).sum()  # what they sum to
        self._optimizer.step(self.gradient(grads, losses, present), present)
        w.clamp_(min=_FLOOR)
        if present is None:
            w.mul_(total / w.sum())
        else:
            w.copy_(torch.where(present, w * total / (w * present).sum(), w))
        self._current = w.clone()  # a new tensor: see multipliers()
        return None  # the network keeps the ordinary (weighted) gradient

    def __repr__(self) -> str:
        return f"GradNorm(alpha={self.alpha!r}, lr={self.lr!r}, layer={self.layer!r})"
