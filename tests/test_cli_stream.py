"""The command line on rows on disk: streamed training, checkpoints, batch scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import mtlrec
from test_cli import run, tiny_config, tiny_frame, write_config


@pytest.fixture
def folder(tmp_path):
    """tmp_path with a folder of Parquet files (an id column too) and a config over it."""
    rows = tmp_path / "rows"
    rows.mkdir()
    table = tiny_frame(600, 0)
    table.insert(0, "id", np.arange(600) * 7)
    for i in range(3):
        part = pa.Table.from_pandas(table.iloc[i * 200 : (i + 1) * 200], preserve_index=False)
        pq.write_table(part, rows / f"part-{i}.parquet", row_group_size=50)
    training = {"epochs": 2, "batch_size": 32, "lr": "1e-2", "seed": 3, "shuffle_buffer": 120}
    write_config(tmp_path, tiny_config(data={"train": "rows"}, training=training))
    return tmp_path


def test_train_streams_a_folder_and_predict_scores_it_in_batches(folder, capsys):
    code, out, err = run(capsys, "train", "--config", folder / "config.yaml", "--quiet")
    assert code == 0, err
    assert "on 600 rows" in out
    model = mtlrec.load(folder / "model")
    output = folder / "scores.parquet"
    code, out, err = run(
        capsys, "predict", "--model", folder / "model", "--data", folder / "rows",
        "--output", output, "--keep", "id", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    scores = pd.read_parquet(output)
    assert list(scores.columns) == ["id", "click", "buy"]
    assert scores["id"].tolist() == (np.arange(600) * 7).tolist()  # input order kept
    expected = model.predict(pd.read_parquet(folder / "rows"))
    np.testing.assert_allclose(scores["click"], expected["click"], rtol=1e-6)
    code, out, err = run(capsys, "evaluate", "--model", folder / "model", "--data", folder / "rows")
    assert code == 0, err
    assert "click" in out and "auc" in out
    code, _, err = run(
        capsys, "predict", "--model", folder / "model", "--data", folder / "rows",
        "--output", folder / "scores.csv.gz", "--keep", "id", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    again = pd.read_csv(folder / "scores.csv.gz")
    np.testing.assert_allclose(again["buy"], scores["buy"], rtol=1e-6)


def test_an_existing_output_is_kept_unless_overwrite(folder, capsys):
    run(capsys, "train", "--config", folder / "config.yaml", "--quiet")
    output = folder / "scores.parquet"
    output.write_text("mine")
    code, _, err = run(
        capsys, "predict", "--model", folder / "model", "--data", folder / "rows",
        "--output", output,
    )  # fmt: skip
    assert code != 0 and "already exists" in err
    assert output.read_text() == "mine"


def test_train_resumes_from_its_checkpoints(folder, capsys):
    args = ["train", "--config", folder / "config.yaml", "--quiet"]
    checkpoints = ["--checkpoint-dir", folder / "ckpt", "--checkpoint-every", "5"]
    code, _, err = run(capsys, *args, *checkpoints)
    assert code == 0, err
    first = mtlrec.load(folder / "model")
    code, _, err = run(
        capsys, *args, "--checkpoint-dir", folder / "ckpt", "--output", folder / "other"
    )
    assert code != 0 and "pass resume=True" in err
    code, _, err = run(
        capsys, *args, "--checkpoint-dir", folder / "ckpt", "--checkpoint-every", "5",
        "--resume", "--output", folder / "again",
    )  # fmt: skip
    assert code == 0, err
    again = mtlrec.load(folder / "again")
    for key, value in first.network.state_dict().items():
        assert torch.equal(value, again.network.state_dict()[key]), key
    code, _, err = run(capsys, *args, "--resume", "--output", folder / "x")
    assert code != 0 and "--resume needs the checkpoint folder" in err
