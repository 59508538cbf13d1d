"""ESMM (Ma et al., SIGIR 2018): P(click and conversion) = P(click) x P(conversion | click),
trained over the entire impression space.

The roles are named by the tasks: ``ESMM(features, [Task("click"), Task("conversion",
after="click")])``. The conversion label is the post-click outcome (rows without a click
carry none of their own; the click-and-conversion label works too): the library forms
click AND conversion, and a row with conversion = 1 and click = 0 is an error. The
conversion step is trained in ESMM's entire-space form (``funnel="entire_space"``,
:mod:`mtlrec.objective.funnel`), so the outputs are ``click``, ``conversion`` (P(conversion |
click), learned through the product only) and the joint ``click_conversion``. The two
towers share the embedding layer.

Bundles of mtlrec 0.1 named the roles by position (CTR first, CTCVR second, the CVR as
the extra output ``cvr_name``); they load as ``positional_roles=True`` and predict as
before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..exceptions import ConfigError
from ..heads.base import PRIOR_FLOOR
from ..layers import product_logit
from ..tasks import Task
from .base import ARCHITECTURES, InputSpec, MultiTaskNetwork, NetworkConfig, Outputs


@dataclass(kw_only=True)
class ESMMConfig(NetworkConfig):
    """tower_units: hidden units of the CTR and CVR towers. positional_roles: mtlrec 0.1's
    form (tasks CTR then CTCVR, by position; CVR the extra output ``cvr_name``), kept for
    its bundles: nothing checks that the second task is the first's funnel step."""

    tower_units: Sequence[int] | Sequence[Sequence[int]] = (64, 64)
    cvr_name: str = "cvr"
    positional_roles: bool = False

    def validate(self, num_tasks: int) -> None:
        if num_tasks != 2:
            raise ConfigError(
                f"ESMM needs exactly two tasks, e.g. [Task('click'), Task('conversion', "
                f"after='click')], got {num_tasks}"
            )
        super().validate(num_tasks)

    @classmethod
    def upgrade(cls, hyperparameters: dict[str, Any], tasks: Sequence[Task]) -> dict[str, Any]:
        """Bundles written before the roles were named: positional roles."""
        if "positional_roles" not in hyperparameters and not any(t.after for t in tasks):
            return {**hyperparameters, "positional_roles": True}
        return hyperparameters


@ARCHITECTURES.register("esmm", rank=60)
class ESMMNet(MultiTaskNetwork):
    """Entire-space multi-task model: CTCVR = CTR x CVR (Ma et al., SIGIR 2018)."""

    config_class = ESMMConfig
    facade_name = "ESMM"

    @classmethod
    def prepare_tasks(cls, tasks: tuple[Task, ...], config: ESMMConfig) -> tuple[Task, ...]:
        """Named roles: one task after the other, trained in the entire-space form."""
        bad = [t.name for t in tasks if t.type != "binary"]
        if bad:
            raise ConfigError(f"ESMM's tasks are click and conversion: binary, not {bad}")
        steps = [t for t in tasks if t.after is not None]
        if config.positional_roles:
            if steps:
                raise ConfigError("ESMM: positional_roles=True takes tasks without after=")
            return tasks
        if len(steps) != 1:
            raise ConfigError(
                "ESMM needs its roles named: one task follows the other, e.g. "
                "[Task('click'), Task('conversion', after='click')] (the conversion label "
                "is the post-click outcome; a click-and-conversion label works too)"
            )
        (step,) = steps
        if step.funnel == "direct":
            raise ConfigError(
                f"ESMM trains task {step.name!r} through the product P(click) x P(conversion "
                "| click) (funnel='entire_space'), not funnel='direct'; use another "
                "architecture for 'direct'"
            )
        return tuple(
            dataclasses.replace(t, funnel="entire_space") if t is step else t for t in tasks
        )

    def __init__(self, inputs: InputSpec, tasks, config: ESMMConfig) -> None:
        if config.positional_roles and config.cvr_name in {t.name for t in tasks}:
            raise ConfigError(
                f"ESMM cvr_name {config.cvr_name!r} clashes with a task name; pass another cvr_name"
            )
        super().__init__(inputs, tasks, config)
        if config.positional_roles:
            self.extra_outputs = {config.cvr_name: "binary"}
        self.towers = self.make_towers(self.embedding.out_features, shared_input=True)

    def start_at_priors(self, priors) -> None:
        """Positional roles: the second tower is the CVR, whose prior is the CTCVR
        rate over the CTR rate (capped below 1)."""
        if self.config.positional_roles and all(p is not None for p in priors):
            ctr, ctcvr = (torch.sigmoid(p.double()) for p in priors)
            cvr = (ctcvr / ctr).clamp(PRIOR_FLOOR, 1.0 - PRIOR_FLOOR)
            priors = [priors[0], torch.logit(cvr).float()]
        super().start_at_priors(priors)

    def input_readers(self):
        return self.towers.input_readers()

    def forward(self, batch) -> Outputs:
        x = self.embedding(batch)  # (B, I) shared by both towers
        if not self.config.positional_roles:
            return self.outputs(self.towers(x))  # click, conversion; the joint is added
        ctr, cvr = self.towers(x)  # (B,), (B,)
        outputs = self.outputs([ctr, product_logit(ctr, cvr)])
        outputs.extras[self.config.cvr_name] = cvr
        return outputs

    def evaluation_targets(
        self, targets: dict[str, np.ndarray]
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Positional roles: CVR on the clicked rows, where the CTCVR label is the
        conversion label (when they hold both classes)."""
        if not self.config.positional_roles:
            return {}
        ctr, ctcvr = self.task_names
        clicked = targets[ctr] == 1
        conversions = targets[ctcvr][clicked]
        if not 0 < conversions.sum() < len(conversions):
            return {}
        return {self.config.cvr_name: (clicked, targets[ctcvr])}
