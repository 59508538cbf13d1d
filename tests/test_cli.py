"""The ``mtlrec`` command line: train -> evaluate -> predict, config errors, safety."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import mtlrec
import mtlrec.runtime
from mtlrec import cli
from mtlrec.bundle import BUNDLE_FILES
from mtlrec.cli import build_parser, load_config, main
from mtlrec.datasets import adult_features, adult_tasks
from mtlrec.experiments import benchmark
from mtlrec.experiments.benchmark import REFERENCE_CONFIGS, BenchmarkData

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def tiny_frame(rows: int, seed: int) -> pd.DataFrame:
    """Two sparse and two dense columns; click depends on them, buy implies click."""
    rng = np.random.default_rng(seed)
    color = rng.choice(["red", "green", "blue"], rows)
    shop = rng.integers(0, 5, rows)
    price = rng.normal(size=rows)
    click = ((color == "red") | (price > 0.8)) ^ (rng.random(rows) < 0.1)
    return pd.DataFrame(
        {
            "color": color,
            "shop": shop,
            "price": price,
            "age": rng.uniform(18, 70, rows),
            "click": click.astype(int),
            "buy": (click & (shop < 2)).astype(int),
        }
    )


def tiny_config(**changes) -> dict:
    config = {
        "data": {"train": "train.csv", "test": "test.csv"},
        "features": {
            "sparse": ["color", {"name": "shop", "embedding_dim": 3}],
            "dense": ["price", "age"],
            "embedding_dim": 4,
        },
        "tasks": [{"name": "click", "type": "binary", "weight": 1.0}, {"name": "buy"}],
        "model": {
            "architecture": "mmoe",
            "num_experts": 2,
            "expert_units": [8],
            "gate_units": [],
            "tower_units": [4],
        },
        "training": {"epochs": 2, "batch_size": 64, "lr": "1e-2", "seed": 3},
        "output": "model",
    }
    for section, value in changes.items():
        config[section] = value
    return config


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """tmp_path with train.csv, test.csv and a valid config.yaml."""
    tiny_frame(300, 0).to_csv(tmp_path / "train.csv", index=False)
    tiny_frame(120, 1).to_csv(tmp_path / "test.csv", index=False)
    write_config(tmp_path, tiny_config())
    return tmp_path


def write_config(folder: Path, config: dict, name: str = "config.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(config))
    return path


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def trained(workdir: Path, capsys) -> Path:
    code, _, err = run(capsys, "train", "--config", workdir / "config.yaml", "--quiet")
    assert code == 0, err
    return workdir / "model"


def test_train_evaluate_predict_round_trip(workdir, trained, capsys, monkeypatch):
    assert all((trained / name).is_file() for name in BUNDLE_FILES)
    model = mtlrec.load(trained)
    assert model.architecture == "mmoe" and model.seed == 3
    assert model.config.num_experts == 2
    test = pd.read_csv(workdir / "test.csv")

    code, out, _ = run(
        capsys, "evaluate", "--model", trained, "--data", workdir / "test.csv", "--json"
    )
    assert code == 0
    metrics = json.loads(out)
    expected = model.evaluate(test)
    assert set(metrics) == {"click", "buy"}
    for task in expected:
        assert metrics[task] == pytest.approx(expected[task])

    code, out, _ = run(capsys, "evaluate", "--model", trained, "--data", workdir / "test.csv")
    assert code == 0 and "click" in out and "auc" in out

    monkeypatch.chdir(workdir)  # relative --output is relative to the current folder
    code, out, err = run(
        capsys,
        "predict",
        "--model",
        "model",
        "--data",
        "test.csv",
        "--output",
        "out/predictions.csv",
    )
    assert code == 0, err
    written = pd.read_csv(workdir / "out" / "predictions.csv")
    assert list(written.columns) == ["click", "buy"]
    assert len(written) == len(test)
    for name, values in model.predict(test).items():
        np.testing.assert_allclose(written[name].to_numpy(), values, rtol=1e-6, atol=1e-7)


def test_train_prints_test_metrics(workdir, capsys):
    code, out, _ = run(
        capsys,
        "train",
        "--config",
        workdir / "config.yaml",
        "--quiet",
        "--output",
        workdir / "elsewhere",
    )
    assert code == 0
    assert "saved to" in out and "test metrics (120 rows)" in out
    assert "click" in out and "buy" in out
    assert (workdir / "elsewhere" / "config.json").is_file()
    assert not (workdir / "model").exists()  # --output overrides the config's output


def test_parquet_data_and_predictions(workdir, capsys):
    for split in ("train", "test"):
        pd.read_csv(workdir / f"{split}.csv").to_parquet(workdir / f"{split}.parquet")
    config = tiny_config(data={"train": "train.parquet", "test": "test.parquet"})
    write_config(workdir, config, "pq.yaml")
    assert run(capsys, "train", "--config", workdir / "pq.yaml", "--quiet")[0] == 0
    code, _, _ = run(
        capsys,
        "predict",
        "--model",
        workdir / "model",
        "--data",
        workdir / "test.parquet",
        "--output",
        workdir / "p.parquet",
    )
    assert code == 0
    assert pd.read_parquet(workdir / "p.parquet").shape == (120, 2)


def test_predict_refuses_to_overwrite(workdir, trained, capsys):
    target = workdir / "predictions.csv"
    target.write_text("keep me\n")
    argv = ["predict", "--model", trained, "--data", workdir / "test.csv", "--output", target]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith("error: ") and "already exists" in err and "--overwrite" in err
    assert "Traceback" not in err
    assert target.read_text() == "keep me\n"
    assert run(capsys, *argv, "--overwrite")[0] == 0
    assert len(pd.read_csv(target)) == 120


def test_train_refuses_to_overwrite_a_bundle(workdir, trained, capsys):
    before = (trained / "weights.safetensors").read_bytes()
    code, _, err = run(capsys, "train", "--config", workdir / "config.yaml", "--quiet")
    assert code == 2 and "already holds a saved model" in err and "--overwrite" in err
    assert (trained / "weights.safetensors").read_bytes() == before
    code, _, _ = run(capsys, "train", "--config", workdir / "config.yaml", "--quiet", "--overwrite")
    assert code == 0


def no_fit(*args, **kwargs):
    pytest.fail("training started although the output path was unusable")


@pytest.mark.parametrize("target", ["model.txt", "model.txt/inner"])
def test_train_output_on_a_file_fails_before_training(workdir, capsys, monkeypatch, target):
    (workdir / "model.txt").write_text("not a folder")
    monkeypatch.setattr(mtlrec.MultiTaskModel, "fit", no_fit)
    code, _, err = run(
        capsys, "train", "--config", workdir / "config.yaml", "--output", workdir / target
    )
    assert code == 2
    assert f"--output {workdir / target}" in err and "is a file" in err and "folder" in err
    assert (workdir / "model.txt").read_text() == "not a folder"


def test_train_config_output_on_a_file_names_the_config(workdir, capsys, monkeypatch):
    (workdir / "model").write_text("not a folder")  # the config's output: model
    monkeypatch.setattr(mtlrec.MultiTaskModel, "fit", no_fit)
    code, _, err = run(capsys, "train", "--config", workdir / "config.yaml")
    assert code == 2 and f"{workdir / 'config.yaml'}: output" in err and "is a file" in err


@pytest.mark.parametrize(
    "section, value, key",
    [
        ("trainig", {"epochs": 1}, "trainig"),
        ("training", {"epoch": 1}, "epoch"),
        ("data", {"train": "train.csv", "tset": "test.csv"}, "tset"),
        ("features", {"sparse": ["color"], "dense": ["price"], "dim": 4}, "dim"),
        ("features", {"sparse": [{"name": "color", "embeding_dim": 4}]}, "embeding_dim"),
        ("tasks", [{"name": "click", "kind": "binary"}], "kind"),
        ("model", {"architecture": "mmoe", "num_expert": 2}, "num_expert"),
    ],
)
def test_unknown_config_key_is_named(workdir, capsys, section, value, key):
    config = tiny_config(**{section: value})
    path = write_config(workdir, config, "bad.yaml")
    code, _, err = run(capsys, "train", "--config", path)
    assert code == 2
    assert err.startswith("error: ") and f"'{key}'" in err
    assert "Traceback" not in err
    assert not (workdir / "model").exists()


def test_unknown_key_error_lists_allowed_keys_and_suggests(workdir, capsys):
    path = write_config(workdir, tiny_config(training={"epoch": 1}), "bad.yaml")
    _, _, err = run(capsys, "train", "--config", path)
    assert "did you mean 'epochs'?" in err and "batch_size" in err


@pytest.mark.parametrize(
    "config, message",
    [
        (tiny_config(data={"train": "missing.csv"}), "does not exist"),
        (tiny_config(data={"train": "train.txt"}), "unknown file type"),
        (tiny_config(data={"dataset": "adult", "train": "train.csv"}), "not both"),
        (tiny_config(training={"epochs": "two"}), "training.epochs"),
        (tiny_config(training={"early_stopping": "click/auc"}), "validation"),
        (tiny_config(model={"architecture": "mmo"}), "unknown architecture"),
        ({"data": {"train": "train.csv"}, "model": {"architecture": "mmoe"}}, "features"),
    ],
)
def test_bad_configs_exit_2(workdir, capsys, config, message):
    path = write_config(workdir, config, "bad.yaml")
    code, _, err = run(capsys, "train", "--config", path)
    assert code == 2 and message in err and "Traceback" not in err


def test_missing_config_and_bad_yaml(workdir, capsys):
    code, _, err = run(capsys, "train", "--config", workdir / "nope.yaml")
    assert code == 2 and "does not exist" in err
    (workdir / "broken.yaml").write_text("data: [unclosed\n")
    code, _, err = run(capsys, "train", "--config", workdir / "broken.yaml")
    assert code == 2 and "not valid YAML" in err


def test_load_config_resolves_paths_and_types(workdir):
    config = load_config(workdir / "config.yaml")
    assert config.train == workdir / "train.csv" and config.output == workdir / "model"
    assert config.training["lr"] == 0.01  # YAML's "1e-2" string becomes a float
    assert config.features[1] == mtlrec.SparseFeature("shop", 3)
    assert config.features[0] == mtlrec.SparseFeature("color", 4)
    assert [t.name for t in config.tasks] == ["click", "buy"]


def test_example_config_is_the_reference_mmoe():
    config = load_config(EXAMPLES / "adult_mmoe.yaml")
    assert config.dataset == "adult" and config.architecture == "mmoe"
    assert config.hyperparameters == REFERENCE_CONFIGS["mmoe"]
    assert config.features == adult_features(16) and config.tasks == adult_tasks()
    assert config.training == {
        "epochs": 5,
        "batch_size": 256,
        "lr": 1e-3,
        "optimizer": "adam",
        "seed": 0,
    }


def test_evaluate_missing_bundle(workdir, capsys):
    code, _, err = run(
        capsys, "evaluate", "--model", workdir / "nope", "--data", workdir / "test.csv"
    )
    assert code == 2 and err.startswith("error: ")


def test_models_lists_architectures_and_defaults(capsys):
    for command in ("models", "list-models"):
        code, out, _ = run(capsys, command)
        assert code == 0
        assert all(f"{name} (" in out for name in mtlrec.list_models())
        assert "mmoe (MMoE): MMoE: each task mixes the shared experts" in out
        assert "task types: binary, regression, multiclass, poisson" in out
        assert "num_experts = 8" in out and "num_levels = 2" in out
        assert "tower_units = [64, 32]" in out


def test_datasets_list_and_export(tmp_path, capsys):
    code, out, _ = run(capsys, "datasets", "list")
    assert code == 0 and out.startswith("adult")
    described = {line.split()[0]: line for line in out.split("\n\n")[0].splitlines()}
    assert {"adult", "census-kdd", "synthetic", "funnel", "hillstrom"} <= set(described)
    assert "--data DIR" in described["hillstrom"] and "--data DIR" in described["census-kdd"]
    code, _, err = run(capsys, "datasets", "export", "adult", "--output", tmp_path)
    assert code == 0, err
    train = pd.read_csv(tmp_path / "train.csv")
    assert len(train) == 32561 and {"income", "marital"} <= set(train.columns)
    assert len(pd.read_csv(tmp_path / "test.csv")) == 16281
    config = load_config(tmp_path / "config.yaml")
    assert config.train == tmp_path / "train.csv" and config.test == tmp_path / "test.csv"
    assert config.features == adult_features() and config.tasks == adult_tasks()
    code, _, err = run(capsys, "datasets", "export", "adult", "--output", tmp_path)
    assert code == 2 and "--overwrite" in err


def tiny_loader() -> BenchmarkData:
    """Tiny synthetic click / buy data."""
    features = [
        mtlrec.SparseFeature("color", 4),
        mtlrec.SparseFeature("shop", 4),
        mtlrec.DenseFeature("price"),
        mtlrec.DenseFeature("age"),
    ]
    return BenchmarkData(
        tiny_frame(300, 0), tiny_frame(200, 1), features, [mtlrec.Task("click"), mtlrec.Task("buy")]
    )


def test_benchmark_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(benchmark.DATASETS, "tiny", tiny_loader)
    argv = [
        "benchmark",
        "tiny",
        "--models",
        "shared_bottom",
        "mmoe",
        "--seeds",
        "2",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--output",
        tmp_path / "out",
        "--quiet",
    ]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "| model | params | click AUC | buy AUC | fit s | samples/s |"
    assert [line.split(" | ")[0].strip("| ") for line in lines[2:]] == ["shared_bottom", "mmoe"]
    records = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(records) == 2 * 2 * 2
    assert "--seeds 2" in (tmp_path / "out" / "results.md").read_text()
    assert (tmp_path / "out" / "results.png").is_file()
    assert (tmp_path / "out" / "training.png").is_file()  # the training curves
    code, _, err = run(capsys, *argv)
    assert code == 2 and "--overwrite" in err


def test_datasets_list_names_only_benchmark_choices(capsys):
    code, out, _ = run(capsys, "datasets", "list")
    listed = [line.split()[0] for line in out.split("\n\n")[0].splitlines()]
    assert code == 0 and len(listed) >= 5
    parser = build_parser()
    for name in listed:
        assert parser.parse_args(["benchmark", name]).dataset == name


def test_benchmark_writes_to_results_by_default_never_overwriting(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(benchmark.DATASETS, "tiny", tiny_loader)
    monkeypatch.chdir(tmp_path)
    argv = ["benchmark", "tiny", "--models", "mmoe", "--epochs", "1", "--quiet"]
    code, _, err = run(capsys, *argv)
    assert code == 0, err
    first = tmp_path / "results" / "tiny"
    assert (first / "results.json").is_file() and (first / "results.md").is_file()
    assert f"results written to {Path('results') / 'tiny'}" in err
    before = (first / "results.json").read_text()
    code, _, err = run(capsys, *argv)
    assert code == 0, err
    assert (tmp_path / "results" / "tiny-2" / "results.json").is_file()
    assert f"results written to {Path('results') / 'tiny-2'}" in err
    assert (first / "results.json").read_text() == before


def test_default_results_folder(tmp_path, monkeypatch):
    assert cli.default_results_folder("adult", tmp_path) == tmp_path / "adult"
    (tmp_path / "adult").mkdir()  # an empty folder holds no results: used
    assert cli.default_results_folder("adult", tmp_path) == tmp_path / "adult"
    (tmp_path / "adult" / "results.json").write_text("[]")
    (tmp_path / "adult-2").write_text("a file")
    assert cli.default_results_folder("adult", tmp_path) == tmp_path / "adult-3"
    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["benchmark", "census-kdd", "--group", "2"])
    assert cli._output_folder(args) == Path("results") / "census-kdd-group2"
    args = build_parser().parse_args(["benchmark", "census-kdd", "--output", "mine"])
    assert cli._output_folder(args) == Path("mine")


def test_benchmark_output_on_a_file_fails_before_running(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(benchmark.DATASETS, "tiny", tiny_loader)
    monkeypatch.setattr(mtlrec.MultiTaskModel, "fit", no_fit)
    (tmp_path / "out").write_text("a file")
    code, _, err = run(capsys, "benchmark", "tiny", "--output", tmp_path / "out")
    assert code == 2 and "is a file" in err


def test_usage_errors_and_help(capsys):
    assert run(capsys, "--help")[0] == 0
    assert run(capsys, "train", "--help")[0] == 0
    code, _, err = run(capsys)
    assert code == 2 and "usage: mtlrec" in err
    code, _, err = run(capsys, "benchmark", "adult", "--models", "nope")
    assert code == 2 and "invalid choice" in err
    code, _, err = run(capsys, "benchmark", "adult", "--group", "2")
    assert code == 2 and "census-kdd only" in err
    code, _, err = run(capsys, "benchmark", "census-kdd", "--group", "3")
    assert code == 2 and "invalid choice" in err


CENSUS_FIXTURE = Path(__file__).parent / "data" / "census_kdd"


def test_benchmark_census_kdd_on_the_fixture(tmp_path, capsys):
    code, out, err = run(
        capsys, "benchmark", "census-kdd", "--group", "2", "--data", str(CENSUS_FIXTURE),
        "--models", "mmoe", "--epochs", "3", "--patience", "1", "--batch-size", "16",
        "--output", str(tmp_path / "out"),
    )  # fmt: skip
    assert code == 0, err
    assert "paper mode" in err  # the split is announced
    assert out.splitlines()[0].startswith("| model | params | education_college AUC | marital AUC")
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {r["task"] for r in results} == {"education_college", "marital"}
    assert all(1 <= r["best_epoch"] <= r["epochs_run"] <= 3 for r in results)
    report = (tmp_path / "out" / "results.md").read_text()
    assert "census-kdd group 2" in report and "early stopping on validation" in report


def test_benchmark_census_kdd_without_files_says_where_to_put_them(tmp_path, capsys):
    code, _, err = run(capsys, "benchmark", "census-kdd", "--data", str(tmp_path))
    assert code == 2
    assert str(tmp_path) in err and "census-income.test" in err and "--download" in err


def test_benchmark_synthetic_command(tmp_path, capsys):
    code, out, err = run(
        capsys, "benchmark", "synthetic", "--correlations", "0.5", "1.0", "--rows", "256",
        "--epochs", "1", "--models", "shared_bottom", "mmoe", "--output", str(tmp_path / "s"),
        "--quiet",
    )  # fmt: skip
    assert code == 0, err
    assert "shared_bottom" in out and "mmoe" in out and "omoe" not in out
    records = json.loads((tmp_path / "s" / "results.json").read_text())
    assert sorted({(r["model"], r["correlation"]) for r in records}) == [
        ("mmoe", 0.5), ("mmoe", 1.0), ("shared_bottom", 0.5), ("shared_bottom", 1.0),
    ]  # fmt: skip
    assert all(r["n_train"] == 256 and len(r["train_loss"]) == 1 for r in records)
    code, _, err = run(capsys, "benchmark", "synthetic", "--models", "poso")
    assert code == 2 and "['poso'] have no sizes" in err and "feature groups" in err
    code, _, err = run(capsys, "benchmark", "adult", "--correlations", "0.5")
    assert code == 2 and "synthetic benchmark only" in err


def test_evaluate_a_file_without_labels_gives_cli_advice(workdir, trained, capsys):
    pd.read_csv(workdir / "test.csv").drop(columns=["buy"]).to_csv(
        workdir / "unlabelled.csv", index=False
    )
    code, _, err = run(capsys, "evaluate", "--model", trained, "--data", workdir / "unlabelled.csv")
    assert code == 2
    assert "no label column(s) ['buy']" in err and "mtlrec predict --model" in err
    assert "with_labels" not in err  # not the Python API's advice


def test_threads_option_reaches_the_calls(workdir, trained, capsys, monkeypatch):
    seen = []
    real = mtlrec.runtime.threads

    def spy(count):
        seen.append(count)
        return real(count)

    monkeypatch.setattr(mtlrec.runtime, "threads", spy)
    code, _, err = run(
        capsys, "evaluate", "--model", trained, "--data", workdir / "test.csv", "--threads", 1
    )
    assert code == 0, err
    assert seen == [1]
    code, _, _ = run(
        capsys,
        "train",
        "--config",
        workdir / "config.yaml",
        "--quiet",
        "--overwrite",
        "--threads",
        "1",
    )
    assert code == 0 and seen[1:] == [1, 1]  # fit, then evaluate on the test split


def test_multiclass_predictions_get_a_column_per_class(workdir, capsys):
    frame = pd.read_csv(workdir / "train.csv")
    price = frame["price"]
    frame["kind"] = np.where(price > 0.5, "hi", np.where(price < -0.5, "lo", "mid"))
    frame.to_csv(workdir / "train.csv", index=False)
    config = tiny_config(
        tasks=[{"name": "click"}, {"name": "kind", "type": "multiclass"}],
        data={"train": "train.csv"},
    )
    config["features"]["dense"] = ["age"]
    write_config(workdir, config)
    code, _, err = run(capsys, "train", "--config", workdir / "config.yaml", "--quiet")
    assert code == 0, err
    code, _, err = run(
        capsys,
        "predict",
        "--model",
        workdir / "model",
        "--data",
        workdir / "train.csv",
        "--output",
        workdir / "p.csv",
    )
    assert code == 0, err
    written = pd.read_csv(workdir / "p.csv")
    assert list(written.columns) == ["click", "kind", "kind:hi", "kind:lo", "kind:mid"]
    probabilities = written[["kind:hi", "kind:lo", "kind:mid"]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)
    assert (written["kind"] == np.array(["hi", "lo", "mid"])[probabilities.argmax(1)]).all()


def test_train_config_with_a_funnel_a_balancer_and_sample_weights(workdir, capsys):
    frame = tiny_frame(300, 0).assign(w=np.linspace(0.5, 2.0, 300))
    frame.to_csv(workdir / "train.csv", index=False)
    tasks = [
        {"name": "click"},
        {"name": "buy", "after": "click", "funnel": "entire_space", "ipw": 0.5},
    ]
    training = {"epochs": 1, "batch_size": 64, "balancer": "dwa", "sample_weight": "w"}
    write_config(workdir, tiny_config(tasks=tasks, training=training))
    code, out, err = run(capsys, "train", "--config", workdir / "config.yaml")
    assert code == 0, err
    assert "click_buy" in out  # the joint output is evaluated on the test file
    model = mtlrec.load(workdir / "model")
    assert model.tasks[1].after == "click" and model.tasks[1].ipw == 0.5


def test_config_task_keys_are_checked(workdir, capsys):
    write_config(workdir, tiny_config(tasks=[{"name": "click", "afterr": "x"}]))
    code, _, err = run(capsys, "train", "--config", workdir / "config.yaml")
    assert code != 0 and "unknown key 'afterr'" in err and "did you mean 'after'" in err
