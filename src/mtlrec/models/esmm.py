"""ESMM (Ma et al., SIGIR 2018): CTCVR = CTR x CVR over the entire impression space.

The first task is CTR (click labels on all impressions), the second CTCVR (click-and-
convert labels on all impressions); CVR has no loss of its own and is exposed as an
extra output. The two towers share the embedding layer and have separate output biases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..exceptions import ConfigError
from .base import InputSpec, MultiTaskNetwork, NetworkConfig


@dataclass(kw_only=True)
class ESMMConfig(NetworkConfig):
    """tower_units: hidden units of the CTR and CVR towers; cvr_name: key of the CVR output."""

    tower_units: Sequence[int] | Sequence[Sequence[int]] = (64, 64)
    cvr_name: str = "cvr"

    def validate(self, num_tasks: int) -> None:
        if num_tasks != 2:
            raise ConfigError(
                f"ESMM needs exactly two tasks (CTR first, CTCVR second), got {num_tasks}"
            )
        super().validate(num_tasks)


def product_logit(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """logit(sigmoid(a) * sigmoid(b)), exact and without overflow.

    With p = sigmoid(a) sigmoid(b), 1 - p = (e^-a + e^-b + e^-(a+b)) / ((1 + e^-a)(1 + e^-b)),
    so logit(p) = log p - log(1 - p) = -log(e^-a + e^-b + e^-(a+b)): one stable
    logsumexp (5 ops forward and backward, against 14 for log p and log(1 - p) apart).
    """
    return -product_logit_terms(a, b).logsumexp(0)


def product_logit_terms(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(-a, -b, -(a + b)) stacked: :func:`product_logit` is minus their logsumexp, and
    their softmax gives its derivatives (used by the hand-derived ESMM step)."""
    return torch.stack([a, b, a + b]).neg_()


class ESMMNet(MultiTaskNetwork):
    """Entire-space multi-task model with a CTR tower and a CVR tower."""

    config_class = ESMMConfig

    def __init__(self, inputs: InputSpec, tasks, config: ESMMConfig) -> None:
        names = {t.name for t in tasks}
        if config.cvr_name in names:
            raise ConfigError(
                f"ESMM cvr_name {config.cvr_name!r} clashes with a task name; pass another cvr_name"
            )
        self.extra_outputs = (config.cvr_name,)
        super().__init__(inputs, tasks, config)
        self.towers = self.make_towers(self.embedding.out_features, shared_input=True)

    def input_readers(self):
        return self.towers.input_readers()

    def compute(self, sparse, dense):
        x = self.embedding(sparse, dense)  # (B, I) shared by both towers
        ctr, cvr = self.towers(x).unbind(0)  # (B,), (B,)
        return torch.stack([ctr, product_logit(ctr, cvr), cvr]), {}
