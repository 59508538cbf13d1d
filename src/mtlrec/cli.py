"""The ``mtlrec`` command: train from a YAML config, evaluate, predict, benchmark, inspect.

Run ``mtlrec --help`` or ``mtlrec COMMAND --help`` for the options.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from . import inspection, runtime
from ._validation import holds_lists
from .balancers import list_balancers
from .bundle import existing_bundle
from .estimator import MultiTaskModel, load_model, model_class
from .exceptions import ConfigError, DataError, MtlrecError
from .experiments.benchmark import (
    DATASETS,
    REFERENCE_CONFIGS,
    REFERENCE_TRAINING,
    describe_datasets,
    format_table,
    load_dataset,
    run_benchmark,
    write_outputs,
)
from .experiments.funnel import FUNNEL_DEFAULTS, FUNNEL_MODELS
from .experiments.synthetic import SYNTHETIC_CORRELATIONS, SYNTHETIC_DEFAULTS
from .features import DenseFeature, Feature, SequenceFeature, SparseFeature, feature_to_dict
from .heads import list_heads
from .models import list_models, make_config, network_class
from .tasks import Task, task_to_dict

# ---------------------------------------------------------------------------- config

#: benchmark epochs by dataset (census-kdd: the most, with early stopping on validation)
BENCHMARK_EPOCHS = {"adult": REFERENCE_TRAINING["epochs"], "census-kdd": 10}

#: allowed keys of each config section
SECTIONS: dict[str, tuple[str, ...]] = {
    "config": ("data", "features", "tasks", "model", "training", "output"),
    "data": ("dataset", "train", "validation", "test"),
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


# ---------------------------------------------------------------------------- tables


def _table_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise ConfigError(f"{path}: unknown file type; use .csv, .csv.gz, .parquet or .pq")


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV (optionally gzipped) or Parquet file, chosen by suffix."""
    path = Path(path)
    kind = _table_format(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    try:
        return pd.read_csv(path) if kind == "csv" else pd.read_parquet(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OSError) as err:
        raise DataError(f"{path}: cannot read it as {kind} ({err})") from None


def _holds_lists(column: pd.Series) -> bool:
    return holds_lists(column.to_numpy())


def write_table(frame: pd.DataFrame, path: str | Path, overwrite: bool = False) -> Path:
    """Write ``frame`` as CSV or Parquet by suffix; an existing file needs ``overwrite``."""
    path = Path(path)
    kind = _table_format(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "csv":  # list cells (sequence features) as "|"-joined strings
        frame = frame.assign(
            **{
                name: [None if v is None else "|".join(map(str, v)) for v in frame[name]]
                for name in frame.columns
                if frame[name].dtype == object and _holds_lists(frame[name])
            }
        )
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def format_metrics(metrics: dict[str, dict[str, float]]) -> str:
    """One line per task: ``task  metric value  metric value``."""
    width = max(len(task) for task in metrics)
    return "\n".join(
        f"  {task:<{width}}  "
        + "  ".join(f"{k} {v}" if isinstance(v, int) else f"{k} {v:.4f}" for k, v in values.items())
        for task, values in metrics.items()
    )


def _refuse_existing_bundle(path: Path, overwrite: bool, option: str = "--output") -> None:
    """Fail before any work when ``path`` cannot take a bundle: it (or a folder above it)
    is a file, or it already holds a saved model and ``overwrite`` is off."""
    place = next((p for p in (path, *path.parents) if p.exists()), None)
    if place is not None and not place.is_dir():
        what = "is a file" if place == path else f"lies in {place}, which is a file"
        raise FileExistsError(
            f"{option} {path} {what}; a model is saved as a folder of files: give the path "
            "of a folder (new or existing) instead"
        )
    existing = existing_bundle(path)
    if existing and not overwrite:
        raise FileExistsError(
            f"{path} already holds a saved model ({', '.join(existing)}); "
            "pass --overwrite to replace it or choose another --output"
        )


# ---------------------------------------------------------------------------- commands


def cmd_train(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    output = Path(args.output) if args.output else config.output
    if output is None:
        raise ConfigError("no output folder: set 'output:' in the config or pass --output")
    option = "--output" if args.output else f"{args.config}: output"
    _refuse_existing_bundle(output, args.overwrite, option)

    if config.dataset is not None:
        bundled = load_dataset(config.dataset)
        train, validation, test = bundled.train, None, bundled.test
        features = config.features or bundled.features
        tasks = config.tasks or bundled.tasks
    else:
        train = read_table(config.train)
        validation = read_table(config.validation) if config.validation else None
        test = read_table(config.test) if config.test else None
        features, tasks = config.features, config.tasks

    fit_options = dict(config.training)
    if args.epochs is not None:
        fit_options["epochs"] = args.epochs
    seed = fit_options.pop("seed", 0)
    device = fit_options.pop("device", "cpu")
    model = MultiTaskModel(
        features,
        tasks,
        architecture=config.architecture,
        scaling=config.scaling,
        seed=seed,
        device=device,
        **config.hyperparameters,
    )
    start = time.perf_counter()
    model.fit(
        train, validation, verbose=0 if args.quiet else 1, threads=args.threads, **fit_options
    )
    seconds = time.perf_counter() - start
    model.save(output, overwrite=args.overwrite)
    print(
        f"trained {config.architecture} ({model.num_parameters():,} parameters) on "
        f"{len(train):,} rows in {seconds:.1f}s; saved to {output}"
    )
    if test is not None:
        print(f"test metrics ({len(test):,} rows):")
        print(format_metrics(model.evaluate(test, threads=args.threads)))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    table = read_table(args.data)
    missing = [t.name for t in model.tasks if t.name not in table.columns]
    if missing:
        raise DataError(
            f"{args.data} has no label column(s) {missing}, which evaluate compares the "
            f"predictions with; add them to the file, or write predictions without labels "
            f"with: mtlrec predict --model {args.model} --data {args.data} --output FILE"
        )
    options = {} if args.group is None else {"group": args.group}
    if args.group is not None and args.group not in table.columns:
        raise DataError(
            f"--group {args.group}: {args.data} has no such column; its columns are "
            f"{list(table.columns)}"
        )
    metrics = model.evaluate(table, batch_size=args.batch_size, threads=args.threads, **options)
    print(json.dumps(metrics, indent=2) if args.json else format_metrics(metrics))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    output = Path(args.output)
    _table_format(output)  # fail before any work on a bad suffix
    if output.exists() and not args.overwrite:
        raise FileExistsError(f"{output} already exists; pass --overwrite to replace it")
    keep = list(dict.fromkeys(args.keep or []))
    model = load_model(args.model)
    table = read_table(args.data)
    missing = [c for c in keep if c not in table.columns]
    if missing:
        raise DataError(
            f"--keep {' '.join(missing)}: {args.data} has no such column(s); its columns are "
            f"{list(table.columns)}"
        )
    predicted = _prediction_columns(
        model, model.predict(table, batch_size=args.batch_size, threads=args.threads)
    )
    clash = [c for c in keep if c in predicted]
    if clash:
        raise ConfigError(
            f"--keep {' '.join(clash)}: the predictions have a column of that name too; "
            "keep other columns or rename them in the input"
        )
    predictions = pd.DataFrame(
        {**{c: table[c].to_numpy() for c in keep}, **predicted}, index=range(len(table))
    )
    write_table(predictions, output, overwrite=args.overwrite)
    print(f"wrote {len(predictions):,} rows ({', '.join(predictions.columns)}) to {output}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    bundle = Path(args.bundle)
    output = Path(args.output) if args.output else bundle / "model.onnx"
    model = load_model(args.bundle)
    path = model.export_onnx(output, overwrite=args.overwrite)
    outputs = ", ".join(model.network.output_names)
    print(
        f"wrote {path} (inputs: encoded tensors with a dynamic batch axis; outputs: "
        f"{outputs}) and {path.with_suffix('.preprocessing.json')} (how to encode raw rows)"
    )
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from .experiments.plots import plot_gates

    output = Path(args.output) if args.output else Path(args.bundle) / "gates.png"
    if output.suffix.lower() != ".png":
        raise ConfigError(f"--output {output}: the heatmap is a PNG; give a path ending in .png")
    if output.exists() and not args.overwrite:
        raise FileExistsError(f"{output} already exists; pass --overwrite or another --output")
    model = load_model(args.bundle)
    weights = model.gate_weights(
        read_table(args.data), batch_size=args.batch_size, threads=args.threads
    )
    if not weights:
        raise ConfigError(
            f"{args.bundle}: a {model.architecture} model has no gates to inspect; "
            "mixture-of-experts architectures (OMoE, MMoE, CGC, PLE) have them"
        )
    summary = inspection.gate_summary(weights, model.network.expert_groups())
    rows = len(next(iter(weights.values())))
    print(f"mean gate weight per expert ({model.architecture}, {rows:,} rows):")
    print(summary.to_string(float_format="{:.3f}".format, na_rep="-"))
    print()
    print("\n".join(inspection.utilisation_lines(inspection.expert_utilisation(weights))))
    plot_gates(summary, output)
    print(f"\nwrote {output}")
    return 0


def _prediction_columns(model: MultiTaskModel, predicted: dict) -> dict:
    """One column per output; a multiclass output becomes one ``task:class`` column per
    class plus ``task`` holding the most probable class."""
    columns: dict = {}
    for name, values in predicted.items():
        if values.ndim == 2:
            classes = model.classes(name)
            columns[name] = classes[values.argmax(axis=1)]
            for k, c in enumerate(classes):
                columns[f"{name}:{c}"] = values[:, k]
        else:
            columns[name] = values
    return columns


#: where ``mtlrec benchmark`` writes without --output, relative to the current folder
RESULTS_DIR = Path("results")


def _results_name(args: argparse.Namespace) -> str:
    """The benchmark's name in its default results folder (census-kdd with its group)."""
    if args.dataset == "census-kdd":
        return f"census-kdd-group{args.group or 1}"
    return args.dataset


def default_results_folder(name: str, root: Path = RESULTS_DIR) -> Path:
    """``root/name``, or ``root/name-2``, ``-3``, ... when that already holds something:
    a default never overwrites earlier results."""

    def taken(path: Path) -> bool:
        return path.exists() and (not path.is_dir() or any(path.iterdir()))

    path, n = root / name, 1
    while taken(path):
        n += 1
        path = root / f"{name}-{n}"
    return path


def _output_folder(args: argparse.Namespace) -> Path:
    """Where the results go: --output, else a free :func:`default_results_folder`."""
    return Path(args.output) if args.output else default_results_folder(_results_name(args))


def _wrote(out: Path, paths: dict[str, Path]) -> None:
    """Say on stderr where a benchmark's files went."""
    names = ", ".join(p.name for p in paths.values())
    print(f"\nresults written to {out}{os.sep} ({names})", file=sys.stderr)


def cmd_benchmark(args: argparse.Namespace, argv: Sequence[str]) -> int:
    out = Path(args.output) if args.output else None
    if out is not None and out.exists() and not out.is_dir():
        raise FileExistsError(f"--output {out} is a file; give a folder for the results")
    if out is not None and (out / "results.json").exists() and not args.overwrite:
        raise FileExistsError(
            f"{out} already holds benchmark results; pass --overwrite or another --output"
        )
    if args.dataset in ("movielens", "entities"):
        from .experiments.entities import entity_benchmark_command

        return entity_benchmark_command(args, argv, _output_folder(args))
    if args.dataset == "synthetic":
        return _synthetic_benchmark(args, argv)
    if args.dataset in ("funnel", "hillstrom"):
        if args.balancer is not None:
            raise ConfigError("--balancer is an option of the reference and synthetic benchmarks")
        return _funnel_benchmark(args, argv)
    if args.quick:
        raise ConfigError("--quick is an option of the funnel and hillstrom benchmarks only")
    if args.correlations is not None or args.rows is not None:
        raise ConfigError("--correlations and --rows are options of the synthetic benchmark only")
    options: dict[str, Any] = {}
    if args.dataset == "census-kdd":
        options = {"group": args.group, "path": args.data, "download": args.download or None}
    elif args.group is not None or args.data is not None or args.download:
        raise ConfigError("--group, --data and --download are options of census-kdd only")
    data = load_dataset(args.dataset, **options)
    epochs = args.epochs or BENCHMARK_EPOCHS.get(args.dataset, REFERENCE_TRAINING["epochs"])
    batch_size = args.batch_size or REFERENCE_TRAINING["batch_size"]
    lr = args.lr or REFERENCE_TRAINING["lr"]
    if not args.quiet:
        print(f"{args.dataset}: {data.split}", file=sys.stderr)
    records = run_benchmark(
        data,
        models=args.models,
        seeds=args.seeds,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        max_rows=args.max_rows,
        verbose=0 if args.quiet else 1,
        patience=args.patience,
        threads=args.threads,
        balancer=args.balancer or "equal",
    )
    print(format_table(records))
    settings = {
        "dataset": args.dataset + (f" group {args.group or 1}" if options else ""),
        "split": data.split,
        "seeds": args.seeds,
        "epochs": epochs
        if data.validation is None
        else f"at most {epochs}, early stopping on validation {data.tasks[0].name} "
        f"(patience {args.patience}, best epoch kept)",
        "batch_size": batch_size,
        "optimizer": f"adam, lr {lr:g}",
        "balancer": args.balancer or "equal",
    }
    if args.max_rows:
        settings["max_rows"] = args.max_rows
    out = _output_folder(args)
    paths = write_outputs(records, out, command=" ".join(["mtlrec", *argv]), settings=settings)
    _wrote(out, paths)
    return 0


def _synthetic_benchmark(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """``mtlrec benchmark synthetic``: the MMoE paper's controlled-correlation experiment."""
    from .experiments.synthetic import (
        SYNTHETIC_CONFIGS,
        format_synthetic_table,
        run_synthetic_benchmark,
        write_synthetic_outputs,
    )

    census_only = args.group is not None or args.data is not None or args.download
    if census_only or args.max_rows is not None:
        raise ConfigError("--group, --data, --download and --max-rows do not apply to synthetic")
    models = args.models or list(SYNTHETIC_CONFIGS)
    unknown = [m for m in models if m not in SYNTHETIC_CONFIGS]
    if unknown:
        raise ConfigError(f"synthetic runs {list(SYNTHETIC_CONFIGS)}, not {unknown}")
    settings = {
        "n_train": args.rows or SYNTHETIC_DEFAULTS["n_train"],
        "epochs": args.epochs or SYNTHETIC_DEFAULTS["epochs"],
        "batch_size": args.batch_size or SYNTHETIC_DEFAULTS["batch_size"],
        "lr": args.lr or SYNTHETIC_DEFAULTS["lr"],
        "balancer": args.balancer or "equal",
    }
    records = run_synthetic_benchmark(
        correlations=args.correlations or SYNTHETIC_CORRELATIONS,
        seeds=args.seeds,
        models=models,
        verbose=0 if args.quiet else 1,
        threads=args.threads,
        **settings,
    )
    print(format_synthetic_table(records))
    out = _output_folder(args)
    paths = write_synthetic_outputs(records, out, command=" ".join(["mtlrec", *argv]))
    _wrote(out, paths)
    return 0


def _funnel_benchmark(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """``mtlrec benchmark funnel`` (simulated funnels with ground truth) and ``hillstrom``
    (the MineThatData visit -> conversion funnel): CVR models, naive to entire-space."""
    from .experiments.funnel import (
        FUNNEL_QUICK,
        HILLSTROM_DEFAULTS,
        format_funnel_table,
        run_funnel_benchmark,
        run_hillstrom_benchmark,
        write_funnel_outputs,
    )

    name = args.dataset
    if args.group is not None or args.download or args.correlations is not None:
        raise ConfigError(f"--group, --download and --correlations do not apply to {name}")
    models = args.models or list(FUNNEL_MODELS)
    unknown = [m for m in models if m not in FUNNEL_MODELS]
    if unknown:
        raise ConfigError(f"{name} runs {list(FUNNEL_MODELS)}, not {unknown}")
    defaults = FUNNEL_DEFAULTS if name == "funnel" else HILLSTROM_DEFAULTS
    quick = FUNNEL_QUICK if args.quick else {}
    fit = {
        "epochs": args.epochs or quick.get("epochs", defaults["epochs"]),
        "batch_size": args.batch_size or defaults["batch_size"],
        "lr": args.lr or defaults["lr"],
    }
    common = {"models": models, "seeds": args.seeds, "verbose": 0 if args.quiet else 1}
    if name == "funnel":
        if args.data is not None or args.max_rows is not None:
            raise ConfigError("--data and --max-rows do not apply to funnel (use --rows)")
        rows = {
            "n_train": args.rows or quick.get("n_train", defaults["n_train"]),
            "n_test": quick.get("n_test", defaults["n_test"]),
        }
        records = run_funnel_benchmark(**common, **rows, **fit, threads=args.threads)
        title = "mtlrec funnel benchmark (simulated click -> conversion, ground truth)"
        settings = {"data": "mtlrec.datasets.synthetic_funnel defaults", **rows}
    else:
        if args.data is None:
            raise ConfigError(
                "hillstrom needs --data: the hillstrom.csv(.gz) file or the folder holding it"
            )
        if args.rows is not None:
            raise ConfigError("--rows does not apply to hillstrom (use --max-rows)")
        max_rows = args.max_rows or quick.get("n_train")
        records = run_hillstrom_benchmark(
            args.data, **common, **fit, max_rows=max_rows, threads=args.threads
        )
        title = "mtlrec Hillstrom benchmark (e-mail visit -> conversion)"
        settings = {
            "data": f"{args.data}, shuffled with each run's seed, "
            f"{1 - defaults['test']:.0%} train / {defaults['test']:.0%} test"
        }
        if max_rows:
            settings["max_rows"] = max_rows
    print(format_funnel_table(records))
    settings = {**settings, "seeds": args.seeds, **fit, "optimizer": "adam"}
    notes = []
    if name == "hillstrom":
        notes = [
            "Hillstrom's funnel: `click` is the site visit, `conversion` a purchase "
            "after it. Few test conversions: differences within the std are noise."
        ]
    out = _output_folder(args)
    paths = write_funnel_outputs(
        records,
        out,
        title,
        command=" ".join(["mtlrec", *argv]),
        settings=settings,
        notes=notes,
    )
    _wrote(out, paths)
    return 0


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


def cmd_datasets(args: argparse.Namespace) -> int:
    if args.action == "list":
        for name, description in describe_datasets().items():
            print(f"{name:<12} {description}")
        print(
            f"\nbenchmark any with: mtlrec benchmark NAME; export {', '.join(sorted(DATASETS))} "
            "as CSV with: mtlrec datasets export NAME --output DIR"
        )
        return 0
    out = Path(args.output)
    targets = [out / "train.csv", out / "test.csv", out / "config.yaml"]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not args.overwrite:
        raise FileExistsError(f"{', '.join(existing)} already exist(s); pass --overwrite")
    data = load_dataset(args.name, **({"path": args.data} if args.data else {}))
    write_table(data.train, targets[0], overwrite=True)
    write_table(data.test, targets[1], overwrite=True)
    targets[2].write_text(
        yaml.safe_dump(
            config_template(args.name, data.features, data.tasks),
            sort_keys=False,
            default_flow_style=None,
        )
    )
    print(
        f"wrote {len(data.train):,} train and {len(data.test):,} test rows to {out}; "
        f"train with: mtlrec train --config {targets[2]}"
    )
    return 0


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "(required)"
    return list(value) if isinstance(value, tuple) else value


def cmd_models(args: argparse.Namespace) -> int:
    for name in list_models():
        cls = model_class(name)
        doc = (cls.__doc__ or "").strip().splitlines()
        print(f"{name} ({cls.__name__}): {doc[0] if doc else ''}".rstrip(": "))
        for field in dataclasses.fields(network_class(name).config_class):
            print(f"    {field.name} = {_default(field)!r}")
    print(f"task types: {', '.join(list_heads())}")
    return 0


# ---------------------------------------------------------------------------- parser


def _add_inference_args(p: argparse.ArgumentParser, columns: str) -> None:
    """--model, --data, --batch-size and --threads, shared by evaluate and predict."""
    p.add_argument("--model", required=True, metavar="DIR", help="bundle folder from 'train'")
    p.add_argument(
        "--data",
        required=True,
        metavar="FILE",
        help=f"CSV (.csv, .csv.gz) or Parquet (.parquet, .pq) file with every {columns}",
    )
    _add_batch_size(p)
    _add_threads(p)


def _add_batch_size(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        metavar="N",
        help="rows per inference batch (default: sized so activations stay in CPU cache)",
    )


def _add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch threads (default: the CPUs this process may use, "
        f"{runtime.available_cpus()} here; with other busy processes on the same cores, "
        "fewer are faster)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``mtlrec`` argument parser with all subcommands."""
    from ._version import __version__

    parser = argparse.ArgumentParser(
        prog="mtlrec",
        description="Multi-task recommender models (Shared-Bottom, OMoE, MMoE, CGC, PLE, "
        "ESMM): train from a YAML config, evaluate, predict, inspect the gates and benchmark.",
        epilog="examples:\n"
        "  mtlrec datasets export adult --output data/adult\n"
        "  mtlrec train --config data/adult/config.yaml\n"
        "  mtlrec evaluate --model data/adult/adult_mmoe --data data/adult/test.csv\n"
        "  mtlrec benchmark adult --seeds 3    # writes results/adult",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"mtlrec {__version__}",
        help="print the mtlrec version and exit",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "train",
        help="train a model from a YAML config and save it",
        description="Train a model described by a YAML config (sections data, "
        "features, tasks, model, training, output) and save the "
        "bundle; prints test metrics when the data has a test split.",
    )
    p.add_argument(
        "--config",
        required=True,
        metavar="FILE.yaml",
        help="YAML config; relative paths in it are relative to its folder",
    )
    p.add_argument(
        "--output",
        metavar="DIR",
        help="bundle folder (overrides the config's 'output'; relative to the current folder)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a model already saved in the output folder",
    )
    p.add_argument(
        "--epochs",
        type=int,
        metavar="E",
        help="training epochs (overrides the config's training.epochs)",
    )
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress on stderr")
    _add_threads(p)

    p = sub.add_parser(
        "evaluate",
        help="print the per-task metrics of a saved model",
        description="Evaluate a saved model on a labelled CSV/Parquet file.",
    )
    _add_inference_args(p, "feature and label column")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument(
        "--group",
        metavar="COLUMN",
        help="also report each binary task's group AUC (gauc) over this column, e.g. a "
        "user id: the AUC within each group averaged with the groups' row counts, over the "
        "groups holding both classes (gauc_groups used, gauc_skipped one-class groups)",
    )

    p = sub.add_parser(
        "predict",
        help="write a saved model's predictions to a file",
        description="Predict with a saved model: one output column per model "
        "output (probabilities for binary tasks), rows in input order.",
    )
    _add_inference_args(p, "feature column")
    p.add_argument(
        "--output",
        required=True,
        metavar="FILE",
        help="predictions file; CSV or Parquet by its suffix",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument(
        "--keep",
        action="append",
        metavar="COLUMN",
        help="copy this input column (an id, say) into the output, before the predictions; "
        "repeat for several, in order",
    )

    p = sub.add_parser(
        "export",
        help="write a saved model as ONNX, with its preprocessing spec",
        description="Write a saved model as an ONNX graph over the encoded tensors "
        "(sparse ids, dense values, sequences and lengths; a dynamic batch axis) with one "
        "named output per task (and funnel joint), as predict returns them, and a "
        ".preprocessing.json file beside it with the vocabularies or hash settings, scalers "
        'and column order. Needs the onnx package: pip install "mtlrec[onnx]".',
    )
    p.add_argument("bundle", metavar="BUNDLE", help="bundle folder from 'train'")
    p.add_argument("--format", choices=["onnx"], default="onnx", help="(default: onnx)")
    p.add_argument("--output", metavar="FILE", help="the .onnx file (default: BUNDLE/model.onnx)")
    p.add_argument("--overwrite", action="store_true", help="replace existing files")

    p = sub.add_parser(
        "inspect",
        help="show how a saved model's gates use their experts",
        description="Print the mean gate weight per gate and expert of a saved "
        "mixture-of-experts model (OMoE, MMoE, CGC, PLE) on a data file, each gate's "
        "normalised entropy and top expert, warnings about collapsed gates and unused "
        "experts, and write the table as a heatmap PNG.",
    )
    p.add_argument("bundle", metavar="BUNDLE", help="bundle folder from 'train'")
    p.add_argument(
        "--data",
        required=True,
        metavar="FILE",
        help="CSV (.csv, .csv.gz) or Parquet (.parquet, .pq) file with every feature column",
    )
    p.add_argument(
        "--output",
        metavar="PNG",
        help="heatmap file (default: BUNDLE/gates.png)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing heatmap file")
    _add_batch_size(p)
    _add_threads(p)

    p = sub.add_parser(
        "benchmark",
        help="train every reference model on a dataset",
        description="Train each reference model (benchmark.REFERENCE_CONFIGS) "
        "for each seed on the train split (with early stopping where the dataset has a "
        "validation split, as census-kdd does), test it on the test split and print a "
        "Markdown table. 'synthetic' instead trains Shared-Bottom, OMoE and MMoE on the "
        "MMoE paper's two regression tasks for each --correlations value. 'funnel' and "
        "'hillstrom' train click -> conversion models (experiments.funnel.FUNNEL_MODELS: "
        "a naive CVR model on clicked rows, ESMM, MMoE and PLE with each funnel loss) on "
        "simulated impressions with ground truth, or on the MineThatData e-mail data. "
        "'movielens' and 'entities' train Shared-Bottom, MMoE and PLE each with and without "
        "the user's history and with and without experts per entity (user, item), on "
        "MovieLens-100K or on simulated users and items with ground truth.",
    )
    p.add_argument(
        "dataset",
        choices=list(describe_datasets()),
        help="benchmark dataset; 'synthetic' runs the MMoE paper's task-correlation "
        "experiment (Shared-Bottom, OMoE, MMoE on two regression tasks); 'funnel' and "
        "'hillstrom' the click -> conversion models",
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        metavar="N",
        help="runs per model, with seeds 0..N-1 (default: %(default)s)",
    )
    p.add_argument(
        "--models",
        nargs="+",
        choices=list(dict.fromkeys([*REFERENCE_CONFIGS, *FUNNEL_MODELS])),
        metavar="MODEL",
        help=f"models to run (default: all of {', '.join(REFERENCE_CONFIGS)}; funnel and "
        f"hillstrom: all of {', '.join(FUNNEL_MODELS)})",
    )
    p.add_argument(
        "--epochs",
        type=int,
        metavar="E",
        help="training epochs; the most epochs where early stopping applies (default: "
        + ", ".join(f"{k} {v}" for k, v in BENCHMARK_EPOCHS.items())
        + f", synthetic {SYNTHETIC_DEFAULTS['epochs']}, funnel and hillstrom "
        f"{FUNNEL_DEFAULTS['epochs']})",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        metavar="B",
        help=f"training batch size (default: {REFERENCE_TRAINING['batch_size']})",
    )
    p.add_argument(
        "--lr",
        type=float,
        help=f"Adam learning rate (default: {REFERENCE_TRAINING['lr']:g}; synthetic: "
        f"{SYNTHETIC_DEFAULTS['lr']:g}, chosen on validation rows; funnel and hillstrom: "
        f"{FUNNEL_DEFAULTS['lr']:g})",
    )
    p.add_argument(
        "--correlations",
        type=float,
        nargs="+",
        metavar="P",
        help="synthetic: task correlation scores, each in [-1, 1] (default: 0.5 0.9 1.0)",
    )
    p.add_argument(
        "--rows",
        type=int,
        metavar="N",
        help="synthetic: training rows per run (default: 100,000; 20,000 more for test); "
        f"funnel: training impressions (default: {FUNNEL_DEFAULTS['n_train']:,}; "
        f"{FUNNEL_DEFAULTS['n_test']:,} more for test); entities: interactions generated "
        "(default 100,000; 20 %% of them for test)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="funnel and hillstrom: a small check of the pipeline, not a result (funnel: "
        "5,000 train and 5,000 test impressions; hillstrom: 5,000 rows of each split; "
        "1 epoch)",
    )
    p.add_argument(
        "--patience",
        type=int,
        default=2,
        metavar="P",
        help="with a validation split (census-kdd): epochs without improvement of the first "
        "task's validation AUC before stopping (default: %(default)s)",
    )
    p.add_argument(
        "--group",
        type=int,
        choices=[1, 2],
        help="census-kdd task group: 1 income + never married (default), "
        "2 college education + never married",
    )
    p.add_argument(
        "--data",
        metavar="DIR",
        help="census-kdd: folder with census-income.data(.gz) and census-income.test(.gz) "
        "(default: $MTLREC_DATA_DIR/census-kdd, else ~/.cache/mtlrec/census-kdd); "
        "hillstrom (required): the hillstrom.csv(.gz) file or the folder holding it; "
        "movielens (required): the ml-100k folder (GroupLens's or RecBole's files)",
    )
    p.add_argument(
        "--download",
        action="store_true",
        help="census-kdd: download missing files from UCI into that folder (checksummed)",
    )
    p.add_argument(
        "--max-rows",
        type=int,
        metavar="N",
        help="use only the first N rows of each split (quick checks)",
    )
    p.add_argument(
        "--output",
        metavar="DIR",
        help="folder for results.md, results.json and results.png (adult, census-kdd: also "
        "training.png, the training curves); default: results/DATASET in the current folder "
        "(census-kdd: results/census-kdd-groupN), or results/DATASET-2, -3, ... when that "
        "already holds results: a default never overwrites",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace results already written to --output"
    )
    p.add_argument(
        "--balancer",
        choices=list_balancers(),
        metavar="NAME",
        help="loss balancer of every fit, one of: "
        + ", ".join(list_balancers())
        + " (default: equal; not for funnel and hillstrom)",
    )
    p.add_argument("--quiet", action="store_true", help="no per-run progress lines on stderr")
    _add_threads(p)

    p = sub.add_parser(
        "datasets",
        help="list the datasets or export one",
        description="List every benchmark dataset, or export a bundled one as CSV files "
        "with a matching train config.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser(
        "list",
        help="names and descriptions of the datasets",
        description="Print every dataset 'mtlrec benchmark' accepts with a description.",
    )
    e = actions.add_parser(
        "export",
        help="write train.csv, test.csv and config.yaml",
        description="Write a dataset's train.csv and test.csv plus a "
        "config.yaml for 'mtlrec train' into a folder.",
    )
    e.add_argument("name", choices=sorted(DATASETS), help="dataset to export")
    e.add_argument("--output", required=True, metavar="DIR", help="folder to write into")
    e.add_argument("--overwrite", action="store_true", help="replace existing files")
    e.add_argument(
        "--data", metavar="DIR", help="the dataset's files, where it is not bundled (movielens)"
    )

    sub.add_parser(
        "models",
        aliases=["list-models"],
        help="list architectures with their hyperparameters and defaults",
        description="Print each registered architecture with its hyperparameters "
        "and their default values.",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mtlrec`` command line; returns the exit code (2 on errors)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2), already printed
        return int(exit_.code or 0)
    commands = {
        "train": cmd_train,
        "evaluate": cmd_evaluate,
        "predict": cmd_predict,
        "inspect": cmd_inspect,
        "export": cmd_export,
        "datasets": cmd_datasets,
        "models": cmd_models,
        "list-models": cmd_models,
        "benchmark": lambda a: cmd_benchmark(a, argv),
    }
    try:
        with runtime.retain_freed_memory():  # the command's own process: tuned heap
            return commands[args.command](args)
    except (MtlrecError, FileExistsError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout closed early, e.g. `mtlrec models | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
