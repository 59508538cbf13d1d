"""The multi-task network contract, the architecture registry and shared hyperparameters.

A network is a pure ``nn.Module``: ``forward(batch) -> Outputs``, logits per task (a
head turns them into predictions and losses outside the network), gate weights and
extra outputs. An architecture is one file in this folder: a config dataclass and a
network class registered with ``@ARCHITECTURES.register(name)``, whose forward
composes the blocks of :mod:`mtlrec.layers` (so the same forward also runs as a fast
training step, :mod:`mtlrec.layers.tape`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..data import Batch
from ..exceptions import ConfigError
from ..layers import BankLinear, BankMLP, GateBank, InputLayer, Towers, activation
from ..layers.experts import GroupedExperts
from ..layers.folding import FoldedInput
from ..layers.towers import TowerLogits
from ..objective import Term, funnel, l2_terms
from ..registry import Registry
from ..tasks import Task

Units = tuple[int, ...]


@dataclass(kw_only=True)
class InputSpec:
    """What the fitted preprocessor tells the network about its inputs and outputs.

    vocabulary_sizes / embedding_dims: rows and size of each sparse column's table.
    num_dense: dense columns.
    outputs: logits per row of each task's head (1 unless multiclass); default all 1.
    layout: the rest of what the input layer reads, as keyword arguments of
        :class:`~mtlrec.layers.InputLayer` (shared tables, sequences, feature groups:
        ``Preprocessor.input_layout()``); passed through untouched, so a new input kind
        adds its keys there and here nothing changes.
    """

    vocabulary_sizes: list[int]
    embedding_dims: list[int]
    num_dense: int
    outputs: list[int] | None = None
    layout: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outputs:
    """What a network's forward returns.

    Attributes:
        logits: per task name, (B,) logits, or (B, K) for a head with K outputs.
        gates: per gate name, the (B, experts) weights it gave (empty without gates).
        extras: outputs that carry no loss of their own, as logits (ESMM's CVR); the
            network's ``extra_outputs`` names the head type that reads each one.
        towers: the towers' output the logits came from (``layers.towers.TowerLogits``),
            which may hold them stacked, or None.
    """

    logits: dict[str, Any]
    gates: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    towers: Any = None

    @property
    def stacked(self) -> Any:
        """The task logits as one (T, B) tensor in task order, when the towers made them
        so (every task one logit, one bank) and ``logits`` still holds exactly those
        tensors (a forward that replaced one gets None); the objective then computes the
        losses of tasks with the same head at once."""
        towers = self.towers
        if towers is None or towers.stacked is None or len(towers) != len(self.logits):
            return None
        if any(a is not b for a, b in zip(self.logits.values(), towers, strict=True)):
            return None
        return towers.stacked

    def named(self) -> dict[str, Any]:
        """Task logits, then extras, by output name."""
        return {**self.logits, **self.extras}


@dataclass(kw_only=True)
class NetworkConfig:
    """Hyperparameters shared by every architecture.

    tower_units: hidden units of each task's tower: one list for all tasks, or one list
        per task (towers may differ).
    dropout: dropout rate after every hidden layer.
    batch_norm: batch normalisation before every hidden activation.
    activation: hidden activation name (relu, gelu, silu, tanh, ...).
    l2_embedding: L2 penalty on the embedding rows a batch uses (sum of squares / batch).
    l2_dense: L2 penalty on every hidden and output weight matrix (sum of squares).
    entity_experts: feature group -> experts that read only that group's features
        (``{"user": 2, "item": 2}``), beside the shared experts; for architectures that
        have experts (or bottoms) only.
    """

    tower_units: Sequence[int] | Sequence[Sequence[int]] = (64, 32)
    dropout: float = 0.0
    batch_norm: bool = False
    activation: str = "relu"
    l2_embedding: float = 0.0
    l2_dense: float = 0.0
    entity_experts: dict[str, int] = field(default_factory=dict)

    #: whether the architecture has experts (or bottoms) that entity_experts can add to
    takes_entity_experts: ClassVar[bool] = False
    #: whether ``tower_units`` may give each task its own hidden units
    towers_may_differ: ClassVar[bool] = True
    #: the hyperparameters the benchmarks compare it with (``mtlrec benchmark``)
    reference: ClassVar[dict[str, Any]] = {}
    #: its sizes in the MMoE paper's synthetic experiment (``mtlrec benchmark synthetic``:
    #: 100 dense inputs, two regression tasks), matched to MMoE's 14,834 parameters
    #: within 5 %; None: it does not run there
    reference_synthetic: ClassVar[dict[str, Any] | None] = None

    def loss_terms(self) -> list[Term]:
        """The training loss's addends beyond the task losses that these hyperparameters
        ask for: the L2 penalties, and an architecture's own regulariser (extend it)."""
        return l2_terms(self.l2_embedding, self.l2_dense)

    def check_groups(self, groups: Sequence[str]) -> None:
        """ConfigError when the features' groups lack one the hyperparameters name
        (``entity_experts``'s; an architecture that reads a group adds its own)."""
        check_entity_groups(self.entity_experts, groups)

    def validate(self, num_tasks: int) -> None:
        """Raise ConfigError for values no network can be built with."""
        experts = self.entity_experts
        if not isinstance(experts, dict) or not all(
            isinstance(g, str) and isinstance(n, int) and not isinstance(n, bool) and n >= 1
            for g, n in experts.items()
        ):
            raise ConfigError(
                "entity_experts must map feature group names to numbers of experts >= 1, "
                f"e.g. {{'user': 2, 'item': 2}}; got {experts!r}"
            )
        if experts and not self.takes_entity_experts:
            raise ConfigError(
                "entity_experts: this architecture has no experts or bottoms to bind to "
                "feature groups; use SharedBottom, OMoE, MMoE, CGC or PLE"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout!r}")
        for name in ("l2_embedding", "l2_dense"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        activation(self.activation)
        self.units_per_task("tower_units", self.tower_units, num_tasks)

    @staticmethod
    def units_per_task(name: str, units, num_tasks: int) -> list[Units]:
        """Normalise ``units`` (one list, or one list per task) to one tuple per task."""
        units = list(units)
        if all(isinstance(u, int) for u in units):
            per_task = [tuple(units)] * num_tasks
        elif all(isinstance(u, list | tuple) for u in units):
            if len(units) != num_tasks:
                raise ConfigError(
                    f"{name} has {len(units)} lists but there are {num_tasks} tasks; give one "
                    f"list per task, or a single list of ints shared by all towers"
                )
            per_task = [tuple(u) for u in units]
        else:
            raise ConfigError(
                f"{name} must be a list of ints or a list of int lists, got {units!r}"
            )
        for u in per_task:
            if any(not isinstance(n, int) or n < 1 for n in u):
                raise ConfigError(f"{name}: hidden units must be positive ints, got {list(u)}")
        return per_task

    @classmethod
    def upgrade(cls, hyperparameters: dict[str, Any], tasks: Sequence[Task]) -> dict[str, Any]:
        """Hyperparameters saved by an earlier mtlrec, in today's form (unchanged by
        default; an architecture whose options changed meaning maps them here)."""
        return hyperparameters

    def to_dict(self) -> dict:
        """JSON-ready hyperparameters (tuples become lists)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}


@dataclass(kw_only=True)
class ExpertsConfig(NetworkConfig):
    """For architectures over a bank of experts: num_experts, experts in the bank;
    expert_units, hidden units of each expert."""

    num_experts: int = 8
    expert_units: Sequence[int] = (64, 64)

    #: the fewest experts the architecture takes (0 with entity experts, where it takes them)
    min_experts: ClassVar[int] = 1

    def validate(self, num_tasks: int) -> None:
        super().validate(num_tasks)
        fewest = 0 if self.entity_experts and self.takes_entity_experts else self.min_experts
        check_positive("num_experts", self.num_experts, minimum=fewest)
        check_units("expert_units", self.expert_units)


def _jsonable(value):
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def check_units(name: str, units: Sequence[int]) -> Units:
    """Validate one hidden-unit list."""
    units = tuple(units)
    if any(not isinstance(n, int) or n < 1 for n in units):
        raise ConfigError(f"{name}: hidden units must be positive ints, got {list(units)}")
    return units


def check_entity_groups(entity_experts: dict[str, int], groups: Sequence[str]) -> None:
    """ConfigError when ``entity_experts`` names a group that no feature has."""
    for group in entity_experts:
        if group not in groups:
            raise ConfigError(
                f"entity_experts names group {group!r}, which no feature has (feature "
                f"groups: {list(groups)}); set group={group!r} on its features or fix the name"
            )


def check_positive(name: str, value: int, minimum: int = 1) -> None:
    if not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


#: architecture name -> network class (its ``config_class`` holds the hyperparameters)
ARCHITECTURES: Registry[type[MultiTaskNetwork]] = Registry("architecture", __package__)


class MultiTaskNetwork(nn.Module):
    """Base of every architecture: input layer -> sharing -> per-task towers -> logits.

    Subclasses implement :meth:`forward` and set:

    * ``config_class``: their hyperparameters (a :class:`NetworkConfig` dataclass);
    * ``facade_name``: the name of the estimator class users build (``"MMoE"``);
    * ``extra_outputs`` (optional): extra output name -> head type that reads it.
    """

    config_class: ClassVar[type[NetworkConfig]] = NetworkConfig
    facade_name: ClassVar[str | None] = None
    copies: int = 1  # independent embedding sets (the single-task baseline uses one per task)

    def __init__(self, inputs: InputSpec, tasks: Sequence[Task], config: NetworkConfig) -> None:
        super().__init__()
        self.tasks = self.prepare_tasks(tuple(tasks), config)
        self._task_names = tuple(t.name for t in self.tasks)
        self.config = config
        self.task_outputs = list(inputs.outputs or [1] * len(self.tasks))
        #: funnel steps (Task(..., after=...)): each adds its joint output
        self.funnel_steps = funnel.steps_of(self.tasks)
        self.extra_outputs: dict[str, str] = {s.joint: "binary" for s in self.funnel_steps}
        self.embedding = InputLayer(
            inputs.vocabulary_sizes,
            inputs.embedding_dims,
            inputs.num_dense,
            copies=self.copies,
            **inputs.layout,
        )
        config.check_groups(self.embedding.feature_groups)

    @property
    def task_names(self) -> tuple[str, ...]:
        return self._task_names

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(self.task_names) + tuple(self.extra_outputs)

    def make_towers(self, in_features: int, shared_input: bool = False) -> Towers:
        """Per-task towers; ``shared_input`` when every tower reads the same (B, I) input."""
        c = self.config
        units = c.units_per_task("tower_units", c.tower_units, len(self.tasks))
        return Towers(
            in_features,
            units,
            c.activation,
            c.dropout,
            c.batch_norm,
            shared_input,
            self.task_outputs,
        )

    def make_experts(self, shared: int, units: Sequence[int]) -> BankMLP | GroupedExperts:
        """The bank of experts reading the input row: ``shared`` experts over every
        feature, plus ``config.entity_experts`` experts per feature group over that
        group's features only (:class:`~mtlrec.layers.experts.GroupedExperts`), shared
        ones first. Output (E, B, H)."""
        c, width = self.config, self.embedding.out_features
        bank = (tuple(units), c.activation, c.dropout, c.batch_norm)
        if not c.entity_experts:
            return BankMLP(shared, width, *bank, shared_input=True)
        columns = {g: self.embedding.group_columns(g) for g in c.entity_experts}
        return GroupedExperts(shared, c.entity_experts, columns, width, *bank)

    def expert_groups(self) -> dict[str, list[str]]:
        """The group of each expert, per set of experts a gate mixes (``""`` for a
        one-level model, ``"level0"`` ...): "shared", a task's name or a feature group;
        empty for an architecture without gates."""
        return {}

    def forward(self, batch: Batch) -> Outputs:
        """A batch -> logits per task (and gate weights, extras)."""
        raise NotImplementedError

    def outputs(self, logits: Sequence[Any], gates: dict[str, Any] | None = None) -> Outputs:
        """Outputs from per-task logits in task order (the towers' output keeps its
        stacked form), with the funnel steps' joint outputs (objective.funnel)."""
        named = dict(zip(self.task_names, logits, strict=True))
        extras: dict[str, Any] = {}
        if self.funnel_steps:
            funnel.add_joint_outputs(named, extras, self.funnel_steps)
        return Outputs(
            named, gates or {}, extras, towers=logits if isinstance(logits, TowerLogits) else None
        )

    @classmethod
    def prepare_tasks(cls, tasks: tuple[Task, ...], config: NetworkConfig) -> tuple[Task, ...]:
        """The tasks as this architecture trains them (checked); unchanged by default.
        The estimator calls it too, so that its preprocessor and objective see the same
        tasks as the network."""
        return tasks

    def evaluation_targets(
        self, targets: dict[str, np.ndarray]
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Extra outputs judged on some rows: {extra name: (row mask (N,), targets (N,))},
        from the tasks' targets (N,) by name; empty by default (funnel steps' outputs are
        judged by :func:`mtlrec.objective.funnel.evaluation_targets`)."""
        return {}

    def start_at_priors(self, priors: Sequence[torch.Tensor | None]) -> None:
        """Set each task's output bias to its prior logits (K,) (None: left as it is;
        :meth:`Objective.output_priors <mtlrec.objective.Objective.output_priors>`), in
        the network's :class:`~mtlrec.layers.Towers`; an architecture whose towers'
        outputs are not its tasks' own logits maps the priors first."""
        (towers,) = (m for m in self.modules() if isinstance(m, Towers))
        with torch.no_grad():
            for t, prior in enumerate(priors):
                if prior is not None:
                    bias = towers.output_bias(t)
                    bias.copy_(prior.to(bias))

    def input_readers(self) -> list[BankLinear] | None:
        """The shared-input linear layers that read the input row, and nothing else does
        (for folding the embeddings into them); None where no such list is declared."""
        return None

    @staticmethod
    def readers_of(*parts: BankMLP | GateBank | Towers) -> list[BankLinear] | None:
        """The input readers of parts that all read the input row; None if one of them
        hands the input on unread."""
        readers = [part.input_readers() for part in parts]
        return None if any(r is None for r in readers) else [r for rs in readers for r in rs]

    def fold_readers(self, rows: int, training: bool = False) -> list[BankLinear] | None:
        """The readers to fold for ``rows`` rows (None: folding does not pay); decided
        from shapes once per batch size."""
        key = (rows, training, self.embedding.sparse_grad)
        plan = self.__dict__.setdefault("_fold_plans", {})
        if key not in plan:
            readers = self.input_readers()
            pays = FoldedInput.pays(self.embedding, readers, rows, training)
            plan[key] = readers if pays else None
        return plan[key]

    @contextmanager
    def folded_input(self, rows: int, training: bool = False) -> Iterator[bool]:
        """Within: the forward pass looks the readers' first layers up in tables folded
        from the current weights (layers.folding), where that pays for ``rows`` rows
        (``training``: for a fast training step, whose rules differentiate the tables).
        Yields whether it folds. The tables are built without gradients."""
        readers = self.fold_readers(rows, training)
        if readers is None:
            yield False
            return
        with torch.no_grad():
            self.embedding.folded = FoldedInput(self.embedding, readers)
        try:
            yield True
        finally:
            self.embedding.folded = None

    def dense_weights(self) -> list[torch.Tensor]:
        """Weight matrices of every hidden/output layer (the L2-regularised ones): the
        banks' (E, I, O) weights and any plain layer's (O, I) weight outside the input
        layer (whose tables have their own penalty)."""
        return [
            p
            for name, p in self.named_parameters()
            if name.endswith("weight") and p.dim() >= 2 and not name.startswith("embedding.")
        ]

    def shared_parameters(self) -> list[nn.Parameter]:
        """The parameters the tasks share, where gradient-level loss balancers
        (:mod:`mtlrec.balancers`) combine the tasks' gradients: by default every
        trainable parameter outside the towers and the gates (per-task blocks), in
        registration order. A bank tensor that also holds task-specific members (PLE's
        task experts) counts as shared; an architecture may override this to declare
        its own split."""
        own = {
            id(p)
            for m in self.modules()
            if isinstance(m, Towers | GateBank)
            for p in m.parameters()
        }
        return [p for p in self.parameters() if p.requires_grad and id(p) not in own]
