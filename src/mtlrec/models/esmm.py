"""ESMM (Ma et al., SIGIR 2018): CTCVR = CTR x CVR over the entire impression space.

The first task is CTR (click labels on all impressions), the second CTCVR (click-and-
convert labels on all impressions); CVR has no loss of its own and is exposed as an
extra output, judged (by ``evaluate``) on the clicked rows, where the CTCVR label is
the conversion label. The two towers share the embedding layer and have separate
output biases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..exceptions import ConfigError
from ..layers import product_logit
from .base import ARCHITECTURES, InputSpec, MultiTaskNetwork, NetworkConfig, Outputs


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


@ARCHITECTURES.register("esmm", rank=60)
class ESMMNet(MultiTaskNetwork):
    """Entire-space multi-task model: CTCVR = CTR x CVR (Ma et al., SIGIR 2018)."""

    config_class = ESMMConfig
    facade_name = "ESMM"

    def __init__(self, inputs: InputSpec, tasks, config: ESMMConfig) -> None:
        names = {t.name for t in tasks}
        if config.cvr_name in names:
            raise ConfigError(
                f"ESMM cvr_name {config.cvr_name!r} clashes with a task name; pass another cvr_name"
            )
        bad = [t.name for t in tasks if t.type != "binary"]
        if bad:
            raise ConfigError(f"ESMM's tasks are click and click-and-convert: binary, not {bad}")
        super().__init__(inputs, tasks, config)
        self.extra_outputs = {config.cvr_name: "binary"}
        self.towers = self.make_towers(self.embedding.out_features, shared_input=True)

    def input_readers(self):
        return self.towers.input_readers()

    def forward(self, batch) -> Outputs:
        x = self.embedding(batch)  # (B, I) shared by both towers
        ctr, cvr = self.towers(x)  # (B,), (B,)
        outputs = self.outputs([ctr, product_logit(ctr, cvr)])
        outputs.extras[self.config.cvr_name] = cvr
        return outputs

    def evaluation_targets(
        self, targets: dict[str, np.ndarray]
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """CVR on the clicked rows, where the CTCVR label is the conversion label (when
        they hold both classes)."""
        ctr, ctcvr = self.task_names
        clicked = targets[ctr] == 1
        conversions = targets[ctcvr][clicked]
        if not 0 < conversions.sum() < len(conversions):
            return {}
        return {self.config.cvr_name: (clicked, conversions)}
