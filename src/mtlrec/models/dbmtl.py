"""DBMTL: deep Bayesian multi-target learning (Wang, Zhao, Jiang, Zhang, Wu, Li and
Lin, Alibaba, "Deep Bayesian Multi-Target Learning for Recommender Systems", arXiv
1902.09154; the structure TorchEasyRec's ``dbmtl`` builds).

The targets are modelled as a chain of conditionals, P(y_1, ..., y_T | x) =
prod_t P(y_t | y_1..y_{t-1}, x), in the order the tasks are given: a shared bottom, a
task layer per task, and a relation layer per task that reads the task's own layer next
to the relation outputs of every task before it:

    h = bottom(x)                                   (B, H)
    u_t = task_t(h)                                 (B, U)
    r_t = relation_t([u_t, r_1, ..., r_{t-1}])      (B, R)
    logit_t = w_t . r_t + b_t

so a later target's prediction conditions on what the network believes of the earlier
ones (a click before a purchase), and its gradient reaches their layers too. The
relation layers have no fast-path rule: the step trains by autograd (``history_`` says
so). Shape legend: T tasks, B batch, H, U, R the bottom, task and relation units.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..exceptions import ConfigError
from ..layers import BankMLP, Towers, activation
from .base import ARCHITECTURES, InputSpec, MultiTaskNetwork, NetworkConfig, Outputs, check_units


@dataclass(kw_only=True)
class DBMTLConfig(NetworkConfig):
    """bottom_units: the shared bottom MLP; task_units: each task's own layers;
    relation_units: each task's relation MLP over its task layer and the earlier tasks'
    relation outputs (its last size is what later tasks read). ``tower_units`` is not
    used: the relation layers are the towers."""

    bottom_units: Sequence[int] = (128,)
    task_units: Sequence[int] = (64,)
    relation_units: Sequence[int] = (32,)
    tower_units: Sequence[int] = ()

    towers_may_differ = False  # every relation layer is read at one width
    #: TorchEasyRec's example sizes, scaled to the other reference models
    reference: ClassVar[dict[str, Any]] = {
        "bottom_units": [128],
        "task_units": [64],
        "relation_units": [32],
    }
    reference_synthetic: ClassVar[dict[str, Any] | None] = {
        "bottom_units": [125],
        "task_units": [8],
        "relation_units": [8],
    }

    def validate(self, num_tasks: int) -> None:
        if self.tower_units:
            raise ConfigError(
                "dbmtl: give relation_units (and task_units) instead of tower_units: the "
                "relation layers are DBMTL's towers"
            )
        super().validate(num_tasks)
        for name in ("bottom_units", "task_units", "relation_units"):
            check_units(name, getattr(self, name))
        if not self.relation_units:
            raise ConfigError("relation_units: give at least one layer, e.g. [32]")


class RelationLayers(nn.Module):
    """Each task's relation MLP over its task layer and the earlier tasks' relation
    outputs: (T, B, U) -> (T, B, R)."""

    #: no fast-path rule: a step over these layers runs autograd (it says so)
    has_fast_rule = False

    def __init__(
        self,
        tasks: int,
        task_width: int,
        units: Sequence[int],
        activation_name: str,
        dropout: float,
    ) -> None:
        super().__init__()
        self.act, self.dropout = activation(activation_name), dropout
        width = units[-1]
        self.mlps = nn.ModuleList(  # task t reads its layer and the t relations before it
            nn.ModuleList(
                nn.Linear(a, b) for a, b in itertools.pairwise([task_width + t * width, *units])
            )
            for t in range(tasks)
        )

    def fast_path_declines(self) -> str | None:
        return "DBMTL's relation layers have no fast-path rule"

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        relations: list[torch.Tensor] = []
        for t, layers in enumerate(self.mlps):
            h = torch.cat([u[t], *relations], dim=-1)
            for layer in layers:
                h = self.act(layer(h))
                if self.dropout:
                    h = nn.functional.dropout(h, self.dropout, self.training)
            relations.append(h)
        return torch.stack(relations)


@ARCHITECTURES.register("dbmtl", rank=37)
class DBMTLNet(MultiTaskNetwork):
    """DBMTL: a shared bottom, task layers and relation layers that condition each task
    on the ones before it (Alibaba, arXiv 1902.09154)."""

    config_class = DBMTLConfig
    facade_name = "DBMTL"

    def __init__(self, inputs: InputSpec, tasks, config: DBMTLConfig) -> None:
        super().__init__(inputs, tasks, config)
        c, n = config, len(tasks)
        self.bottom = self.make_experts(1, c.bottom_units)
        self.task_layers = BankMLP(
            n,
            self.bottom.out_features,
            tuple(c.task_units),
            c.activation,
            c.dropout,
            c.batch_norm,
            shared_input=True,
        )
        self.relations = RelationLayers(
            n, self.task_layers.out_features, c.relation_units, c.activation, c.dropout
        )
        self.towers = Towers(
            c.relation_units[-1], [()] * n, c.activation, outputs=self.task_outputs
        )

    def input_readers(self):
        return self.bottom.input_readers()

    def forward(self, batch) -> Outputs:
        h = self.bottom(self.embedding(batch)).squeeze(0)  # (B, H)
        return self.outputs(self.towers(self.relations(self.task_layers(h))))
