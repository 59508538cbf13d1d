"""One process of the multi-process tests (tests/test_distributed.py): started with
RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set, as torchrun starts it.

Usage: python _distributed_worker.py MODE DATA OUT
MODE: ``memory`` (fit the Parquet file read into memory), ``stream`` (fit the folder as a
stream), ``die`` (rank 1 exits in the middle of epoch 1), ``stop`` (every rank stops at
step 30 of a fit that checkpoints into OUT.checkpoints), ``resume`` (resume that fit).
"""

from __future__ import annotations

import json
import os
import sys

import pandas as pd
import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from mtlrec.training import Optimizers
from test_resume import FIT, model


def main(mode: str, data: str, out: str) -> None:
    rank = int(os.environ["RANK"])
    if mode == "die" and rank == 1:
        original, calls = Optimizers.step, {"n": 0}

        def step(self):
            calls["n"] += 1
            if calls["n"] == 5:
                os._exit(3)  # a crash: no cleanup, no message to the others
            original(self)

        Optimizers.step = step
    if mode == "stop":
        original, calls = Optimizers.step, {"n": 0}

        def stop(self):
            calls["n"] += 1
            if calls["n"] == 30:  # the whole job stops (a machine lost, say)
                os._exit(4)
            original(self)

        Optimizers.step = stop
    rows = data if mode == "stream" else pd.read_parquet(data)
    valid = pd.read_parquet(data) if mode != "stream" else None
    checkpoints: dict = {"checkpoint_every": None}
    if mode in ("stop", "resume"):
        checkpoints = dict(
            checkpoint_dir=out + ".checkpoints", checkpoint_every=5, resume=mode == "resume"
        )
    fitted = model(dropout=0.0).fit(
        rows,
        validation=valid,
        **{**FIT, "batch_size": 64, "epochs": 2, **checkpoints},
        shuffle_buffer=300,
    )
    if rank == 0:
        state = {k: v.contiguous() for k, v in fitted.network.state_dict().items()}
        save_file(state, out + ".safetensors")
        with open(out + ".json", "w") as fh:
            json.dump(fitted.history_, fh)
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:4])
