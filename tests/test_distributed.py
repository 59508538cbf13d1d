"""Two processes on gloo train as one process does (same global batch and seed)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file

from mtlrec.checkpoint import latest_checkpoint
from test_resume import FIT, model, table

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="torch without gloo"
)
WORKER = Path(__file__).with_name("_distributed_worker.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(mode: str, data: Path, out: Path, world: int = 2, timeout: float = 180):
    """Start ``world`` worker processes as torchrun would; their (return codes, stderr)."""
    port = free_port()
    procs = []
    for rank in range(world):
        env = dict(
            os.environ,
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE=str(world),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            MTLREC_DIST_TIMEOUT="30",
            OMP_NUM_THREADS="1",
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, str(WORKER), mode, str(data), str(out)],
                env=env,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise AssertionError(f"a worker hung past {timeout} s") from None
        results.append((proc.returncode, err))
    return results


def check_close(out: Path, reference, atol: float = 1e-5) -> None:
    weights = load_file(str(out) + ".safetensors")
    expected = reference.network.state_dict()
    assert weights.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(weights[key], value, atol=atol, rtol=1e-4, msg=key)


def test_two_processes_train_the_weights_of_one_on_the_same_global_batches(tmp_path):
    data = table(1500)
    data.to_parquet(tmp_path / "rows.parquet")
    results = launch("memory", tmp_path / "rows.parquet", tmp_path / "out")
    assert [code for code, _ in results] == [0, 0], results
    alone = model(dropout=0.0).fit(
        data, validation=data, **dict(FIT, checkpoint_every=None, batch_size=64, epochs=2)
    )
    check_close(tmp_path / "out", alone)
    history = json.loads((tmp_path / "out.json").read_text())
    for mine, one in zip(history, alone.history_, strict=True):
        assert mine["loss"] == pytest.approx(one["loss"], rel=1e-5)
        # the AUC over both processes' rows, not a mean of per-process AUCs
        for task in ("click", "buy"):
            got, want = mine["validation"][task]["auc"], one["validation"][task]["auc"]
            assert got == pytest.approx(want, abs=1e-6)


def test_uneven_streamed_shards_never_hang_and_every_row_is_trained(tmp_path):
    frame = table(1300)
    folder = tmp_path / "rows"
    folder.mkdir()
    for i, (start, stop) in enumerate([(0, 700), (700, 1000), (1000, 1300)]):
        part = pa.Table.from_pandas(frame.iloc[start:stop], preserve_index=False)
        pq.write_table(part, folder / f"part-{i}.parquet")
    results = launch("stream", folder, tmp_path / "out")
    assert [code for code, _ in results] == [0, 0], results
    history = json.loads((tmp_path / "out.json").read_text())
    assert len(history) == 2 and all(r["loss"] > 0 for r in history)


def test_a_rank_that_dies_mid_epoch_stops_the_others_with_an_error_naming_the_rank(tmp_path):
    table(800).to_parquet(tmp_path / "rows.parquet")
    results = launch("die", tmp_path / "rows.parquet", tmp_path / "out", timeout=120)
    (code0, err0), (code1, _) = results
    assert code1 == 3
    assert code0 != 0
    assert "DistributedError" in err0 and "rank 0 of 2" in err0, err0[-2000:]


def test_two_processes_resume_a_stopped_run_to_the_weights_of_one_unbroken_process(tmp_path):
    data = table(1500)
    data.to_parquet(tmp_path / "rows.parquet")
    stopped = launch("stop", tmp_path / "rows.parquet", tmp_path / "out")
    assert [code for code, _ in stopped] == [4, 4], stopped
    newest = latest_checkpoint(tmp_path / "out.checkpoints")
    assert newest is not None and newest.name.endswith("epoch-0002-step-000000005")
    results = launch("resume", tmp_path / "rows.parquet", tmp_path / "out")
    assert [code for code, _ in results] == [0, 0], results
    alone = model(dropout=0.0).fit(
        data, validation=data, **dict(FIT, checkpoint_every=None, batch_size=64, epochs=2)
    )
    check_close(tmp_path / "out", alone)
