"""The ``train`` YAML config: its sections and keys, parsing and checking it
(:func:`load_config`), and the config written beside an exported dataset
(:func:`config_template`)."""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ..exceptions import ConfigError
from ..experiments.benchmark import DATASETS, REFERENCE_CONFIGS, REFERENCE_TRAINING
from ..features import DenseFeature, Feature, SequenceFeature, SparseFeature, feature_to_dict
from ..models import list_models, make_config, network_class
from ..tasks import Task, task_to_dict

#: allowed keys of each config section
SECTIONS: dict[str, tuple[str, ...]] = {
    "config": ("data", "features", "tasks", "model", "training", "output"),
    "data": ("dataset", "train", "validation", "test", "stream"),
    "features": ("sparse", "sequence", "dense", "embedding_dim", "scaling"),
    "features.sparse": tuple(f.name for f in dataclasses.fields(SparseFeature)),
    "features.sequence": tuple(f.name for f in dataclasses.fields(SequenceFeature)),
    "features.dense": tuple(f.name for f in dataclasses.fields(DenseFeature)),
    "tasks": (
        "name",
        "type",
        "weight",
        "standardize",
        "pos_weight",
        "after",
        "funnel",
        "penalty",
        "ipw",
        "joint",
    ),
    "training": (
        "epochs",
        "batch_size",
        "lr",
        "optimizer",
        "weight_decay",
        "seed",
        "early_stopping",
        "patience",
        "device",
        "balancer",
        "sample_weight",
        "shuffle_buffer",
        "checkpoint_dir",
        "checkpoint_every",
    ),
}

#: expected type of each training option
_TRAINING_TYPES: dict[str, type] = {
    "epochs": int,
    "batch_size": int,
    "lr": float,
    "optimizer": str,
    "weight_decay": float,
    "seed": int,
    "early_stopping": str,
    "patience": int,
    "device": str,
    "balancer": str,
    "sample_weight": str,
    "shuffle_buffer": int,
    "checkpoint_dir": str,
    "checkpoint_every": int,
}


@dataclasses.dataclass
class TrainConfig:
    """A parsed ``train`` config; relative paths are already resolved."""

    architecture: str
    hyperparameters: dict[str, Any]
    training: dict[str, Any]
    features: list[Feature] | None = None
    tasks: list[Task] | None = None
    scaling: str = "minmax"
    dataset: str | None = None
    train: Path | None = None
    validation: Path | None = None
    test: Path | None = None
    output: Path | None = None
    stream: bool = False


def _check_keys(mapping: Any, section: str, where: str) -> dict:
    """``mapping`` as a dict; ConfigError naming any key not allowed in ``section``."""
    if not isinstance(mapping, dict):
        raise ConfigError(f"{where}: expected a mapping of keys to values, got {mapping!r}")
    allowed = SECTIONS[section]
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{where}: unknown key {key!r}{hint}; allowed keys: {', '.join(allowed)}"
            )
    return mapping


def _typed(name: str, value: Any, kind: type) -> Any:
    """``value`` as ``kind``; YAML reads ``1e-3`` as a string, so floats accept numeric text."""
    if kind is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    ok = isinstance(value, kind) and not isinstance(value, bool)
    if kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok:
        raise ConfigError(f"training.{name} must be of type {kind.__name__}, got {value!r}")
    return float(value) if kind is float else value


def _parse_features(section: Any, where: str) -> tuple[list[Feature], str]:
    """The ``features`` section: ``sparse``, ``sequence`` and ``dense`` lists whose
    entries are column names or mappings of the feature's options; ``embedding_dim`` is
    the default size of categorical features that neither set nor share one."""
    section = _check_keys(section, "features", where)
    default_dim = section.get("embedding_dim", 16)
    features: list[Feature] = []
    for kind, cls in (
        ("sparse", SparseFeature),
        ("sequence", SequenceFeature),
        ("dense", DenseFeature),
    ):
        items = section.get(kind) or []
        if not isinstance(items, list):
            raise ConfigError(
                f"{where}.{kind}: expected a list of names or mappings, got {items!r}"
            )
        for item in items:
            item = {"name": item} if isinstance(item, str) else item
            item = dict(_check_keys(item, f"features.{kind}", f"{where}.{kind}"))
            if "name" not in item:
                raise ConfigError(f"{where}.{kind}: an entry needs a 'name', got {item!r}")
            if cls is not DenseFeature and "shares" not in item:
                item.setdefault("embedding_dim", default_dim)
            try:
                features.append(cls(**item))
            except TypeError as err:
                raise ConfigError(f"{where}.{kind}: {item!r}: {err}") from None
    return features, section.get("scaling", "minmax")


def _parse_tasks(section: Any, where: str) -> list[Task]:
    if not isinstance(section, list):
        raise ConfigError(
            f"{where}: expected a list of {{name, type, weight, ...}} (keys: "
            f"{', '.join(SECTIONS['tasks'])}), got {section!r}"
        )
    tasks = []
    for item in section:
        if isinstance(item, str):
            tasks.append(Task(item))
            continue
        item = _check_keys(item, "tasks", where)
        if "name" not in item:
            raise ConfigError(f"{where}: a task needs a 'name', got {item!r}")
        tasks.append(Task(**item))
    return tasks


def load_config(path: str | Path) -> TrainConfig:
    """Parse and check a ``train`` YAML config; paths in it are relative to its folder."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    raw = _check_keys(raw, "config", str(path))
    base = path.parent

    def resolve(value: Any, where: str) -> Path:
        if not isinstance(value, str | Path):
            raise ConfigError(f"{path}: {where} must be a path, got {value!r}")
        return Path(os.path.normpath(base / Path(value).expanduser()))

    for section in ("data", "model"):
        if raw.get(section) is None:
            raise ConfigError(f"{path}: the '{section}' section is missing")
    data = _check_keys(raw["data"], "data", f"{path}: data")
    if ("dataset" in data) == ("train" in data):
        raise ConfigError(
            f"{path}: data needs either 'dataset' (one of {sorted(DATASETS)}) or a 'train' "
            f"file path, not both or neither"
        )
    if "dataset" in data and len(data) > 1:
        raise ConfigError(
            f"{path}: data.dataset brings its own splits; drop {sorted(set(data) - {'dataset'})}"
        )

    model = raw.get("model")
    if not isinstance(model, dict) or "architecture" not in model:
        raise ConfigError(
            f"{path}: the model section needs 'architecture' (one of {list_models()}) "
            "plus any hyperparameters"
        )
    hyperparameters = {k: v for k, v in model.items() if k != "architecture"}

    training = _check_keys(raw.get("training") or {}, "training", f"{path}: training")
    training = {k: _typed(k, v, _TRAINING_TYPES[k]) for k, v in training.items()}
    if "early_stopping" in training and "validation" not in data:
        raise ConfigError(f"{path}: training.early_stopping needs a data.validation file")

    config = TrainConfig(
        architecture=model["architecture"],
        hyperparameters=hyperparameters,
        training=training,
        dataset=data.get("dataset"),
    )
    for split in ("train", "validation", "test"):
        if split in data:
            setattr(config, split, resolve(data[split], f"data.{split}"))
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise ConfigError(f"{path}: data.stream must be true or false, got {stream!r}")
    # a folder of files is read as a stream
    config.stream = stream or bool(config.train and config.train.is_dir())
    if "checkpoint_dir" in training:
        training["checkpoint_dir"] = resolve(training["checkpoint_dir"], "checkpoint_dir")
    if raw.get("output") is not None:
        config.output = resolve(raw["output"], "output")
    if raw.get("features") is not None:
        config.features, config.scaling = _parse_features(raw["features"], f"{path}: features")
    if raw.get("tasks") is not None:
        config.tasks = _parse_tasks(raw["tasks"], f"{path}: tasks")
    if config.dataset is None and (config.features is None or config.tasks is None):
        raise ConfigError(f"{path}: list the 'features' and 'tasks' of your data")
    try:  # fail before any data is read
        network_class(config.architecture)
        if config.tasks is not None:
            make_config(config.architecture, hyperparameters, len(config.tasks))
    except ConfigError as err:
        raise ConfigError(f"{path}: model: {err}") from None
    return config


def config_template(name: str, features: Sequence[Feature], tasks: Sequence[Task]) -> dict:
    """A ``train`` config for exported dataset ``name`` (its CSVs lie next to it)."""
    return {
        "data": {"train": "train.csv", "test": "test.csv"},
        "features": _features_section(features),
        "tasks": [task_to_dict(t) for t in tasks],
        "model": {"architecture": "mmoe", **REFERENCE_CONFIGS["mmoe"]},
        "training": {
            **{k: REFERENCE_TRAINING[k] for k in ("epochs", "batch_size", "lr", "optimizer")},
            "seed": 0,
        },
        "output": f"{name}_mmoe",
    }


def _features_section(features: Sequence[Feature]) -> dict[str, Any]:
    """The ``features`` config section: one shared embedding_dim when all categorical
    features agree; a feature with options other than that is written as a mapping."""
    dims = {f.dim for f in features if not isinstance(f, DenseFeature) and f.shares is None}
    section: dict[str, Any] = {}
    if len(dims) == 1:
        section["embedding_dim"] = dims.pop()
    for kind in ("sparse", "sequence", "dense"):
        entries = []
        for f in features:
            if f.kind != kind:
                continue
            options = {k: v for k, v in feature_to_dict(f).items() if k != "kind"}
            if "embedding_dim" in section and (
                f.kind == "dense" or f.shares is not None or f.dim == section["embedding_dim"]
            ):
                options.pop("embedding_dim", None)
            entries.append(options["name"] if len(options) == 1 else options)
        if entries or kind != "sequence":
            section[kind] = entries
    return section
