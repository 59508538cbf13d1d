"""Training checkpoints: exact round trips without pickle, atomic saves, pruning, and
clear errors for corrupt folders."""

from __future__ import annotations

import collections
import enum
import errno
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mtlrec import checkpoint
from mtlrec.checkpoint import (
    STATE_FILE,
    TENSORS_FILE,
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    pack,
    save_checkpoint,
    unpack,
)
from mtlrec.exceptions import ConfigError, MtlrecError

LOGGER = "mtlrec.checkpoint"


def assert_same(actual: Any, expected: Any, where: str = "state") -> None:
    """Exactly equal: same types all the way down, tensors and arrays bit for bit with
    their dtype and shape, floats NaN for NaN and -0.0 for -0.0."""
    assert type(actual) is type(expected), f"{where}: {type(actual)} != {type(expected)}"
    if isinstance(expected, torch.Tensor):
        assert actual.dtype == expected.dtype and actual.shape == expected.shape, where
        assert torch.equal(
            actual.reshape(-1).view(torch.uint8), expected.reshape(-1).view(torch.uint8)
        ), where
    elif isinstance(expected, (np.ndarray, np.generic)):
        assert actual.dtype == expected.dtype and actual.shape == expected.shape, where
        assert actual.tobytes() == expected.tobytes(), where
    elif isinstance(expected, float):
        if math.isnan(expected):
            assert math.isnan(actual), where
        else:
            assert actual == expected and math.copysign(1, actual) == math.copysign(1, expected)
    elif isinstance(expected, dict):
        assert list(actual) == list(expected), f"{where}: keys {list(actual)} != {list(expected)}"
        for key in expected:
            assert type(next(k for k in actual if k == key)) is type(key), f"{where} key {key!r}"
            assert_same(actual[key], expected[key], f"{where}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{where}[{i}]")
    else:
        assert actual == expected, where


def trained_optimizer() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.randn(8, 4)).pow(2).mean().backward()
    optimizer.step()
    return model, optimizer


def nested_state() -> dict[str, Any]:
    model, optimizer = trained_optimizer()
    generator = torch.Generator().manual_seed(123)
    torch.rand(3, generator=generator)
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    return {
        "model": model.state_dict(),  # an OrderedDict
        "optimizer": optimizer.state_dict(),  # int keys in "state", "params" lists of ints
        "torch_generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.default_rng(1).bit_generator.state,  # 128-bit ints
        "legacy_numpy_rng": np.random.RandomState(0).get_state(),  # tuple with a uint32 array
        "floats": [math.nan, math.inf, -math.inf, -0.0, 0.1, 1e300, 5e-324, 1.0],
        "ints": [0, -1, 2**200, -(2**70), True, False],
        "nothing": None,
        "empty": {"list": [], "dict": {}, "tuple": (), "str": ""},
        "tuples": (1, (2.5, "x", None), [()], ("naïve ✓",)),
        "keys": {1: "int", "1": "str", (2, "x"): "tuple", None: "none", 2.5: "float"},
        "tensors": {
            "bool": torch.tensor([True, False, True]),
            "scalar": torch.tensor(3.25, dtype=torch.float64),
            "scalar_int": torch.tensor(7),
            "zero_element": torch.zeros(0, 3, dtype=torch.int64),
            "uint8": torch.tensor([0, 255], dtype=torch.uint8),
            "float64_nonfinite": torch.tensor([math.nan, math.inf, -math.inf, -0.0]).double(),
            "bfloat16": torch.tensor([1.5, -2.0], dtype=torch.bfloat16),
            "transposed": base.t(),
            "slice": base[1:, 2:],
            "whole": base,  # shares its storage with the two views above
            "again": base,  # the same tensor twice
        },
        "arrays": {
            "float32": np.arange(6, dtype=np.float32).reshape(2, 3),
            "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
            "scalar": np.array(4, dtype=np.int64),
            "empty": np.zeros((0, 2), dtype=np.int16),
            "bool": np.array([True, False]),
            "big_endian": np.array([1, 2], dtype=">u4"),
            "strings": np.array(["a", "bcd"]),
            "datetimes": np.array(["2024-01-01"], dtype="datetime64[ns]"),
            "nonfinite": np.array([np.nan, np.inf, -np.inf]),
            "numpy_scalars": [np.float64(1.5), np.int32(-7), np.bool_(True), np.float32(np.nan)],
        },
    }


def test_pack_gives_named_tensors_and_a_plain_json_skeleton():
    state = nested_state()
    tensors, skeleton = pack(state)
    assert all(isinstance(t, torch.Tensor) and t.device.type == "cpu" for t in tensors.values())
    text = json.dumps(skeleton, allow_nan=False)  # strict JSON: no NaN/Infinity literals

    def refuse(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant}")

    assert_same(unpack(tensors, json.loads(text, parse_constant=refuse)), state)


def test_checkpoint_round_trip_is_exact(tmp_path):
    state = nested_state()
    path = save_checkpoint(tmp_path / "ck", state, name="step-000000120")
    assert path == tmp_path / "ck" / "000000001-step-000000120"
    assert sorted(p.name for p in path.iterdir()) == [STATE_FILE, TENSORS_FILE]
    assert latest_checkpoint(tmp_path / "ck") == path
    loaded = load_checkpoint(path)
    assert_same(loaded, state)
    assert loaded["optimizer"]["param_groups"][0]["params"] == [0, 1, 2, 3]
    assert all(t.device.type == "cpu" for t in loaded["model"].values())


def test_parameters_and_grad_tensors_come_back_as_plain_detached_tensors(tmp_path):
    weight = torch.nn.Parameter(torch.randn(2, 2))
    path = save_checkpoint(tmp_path, {"w": weight, "g": weight * 2}, name="p")
    loaded = load_checkpoint(path)
    assert type(loaded["w"]) is torch.Tensor and not loaded["w"].requires_grad
    assert torch.equal(loaded["w"], weight.detach())
    assert torch.equal(loaded["g"], weight.detach() * 2)


def test_resumed_optimizer_steps_exactly_like_the_original(tmp_path):
    model, optimizer = trained_optimizer()
    generator = torch.Generator().manual_seed(7)
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "generator": generator.get_state(),
    }
    path = save_checkpoint(tmp_path, state, name="step-1")

    def train(model: torch.nn.Module, optimizer: torch.optim.Optimizer, gen: torch.Generator):
        for _ in range(3):
            optimizer.zero_grad()
            model(torch.randn(8, 4, generator=gen)).pow(2).mean().backward()
            optimizer.step()

    train(model, optimizer, generator)

    loaded = load_checkpoint(path)
    fresh = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    fresh.load_state_dict(loaded["model"])
    fresh_optimizer = torch.optim.Adam(fresh.parameters(), lr=0.5)  # lr comes from the state
    fresh_optimizer.load_state_dict(loaded["optimizer"])
    fresh_generator = torch.Generator()
    fresh_generator.set_state(loaded["generator"])
    train(fresh, fresh_optimizer, fresh_generator)

    assert fresh_optimizer.param_groups[0]["lr"] == 0.01
    for resumed, original in zip(fresh.parameters(), model.parameters(), strict=True):
        assert torch.equal(resumed, original)
    assert_same(fresh_optimizer.state_dict(), optimizer.state_dict())


def _fail_writing_half(file: Path, data: bytes) -> None:
    with open(file, "xb") as handle:
        handle.write(data[: len(data) // 2])
    raise OSError(errno.ENOSPC, "No space left on device")


def _fail(*args: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize(
    "target, replacement",
    [
        (checkpoint, ("_write_durably", _fail_writing_half)),  # the disk fills mid-file
        (os, ("fsync", _fail)),
        (os, ("replace", _fail)),  # all files written, the rename fails
    ],
    ids=["write", "fsync", "replace"],
)
def test_a_failed_save_leaves_the_previous_checkpoint_whole(
    tmp_path, monkeypatch, target, replacement
):
    directory = tmp_path / "ck"
    first_state = {"weights": torch.arange(5.0), "step": 100}
    first = save_checkpoint(directory, first_state, name="step-100")

    monkeypatch.setattr(target, *replacement)
    with pytest.raises(CheckpointError) as caught:
        save_checkpoint(directory, {"weights": torch.ones(1000), "step": 200}, name="step-200")
    monkeypatch.undo()

    message = str(caught.value)
    assert str(directory) in message and "No space left on device" in message
    assert f"the previous checkpoint {first} is kept" in message
    assert isinstance(caught.value, MtlrecError)
    assert caught.value.__cause__.errno == errno.ENOSPC
    assert [p.name for p in directory.iterdir()] == [first.name]  # no temporary folder left
    assert latest_checkpoint(directory) == first
    assert_same(load_checkpoint(first), first_state)

    again = save_checkpoint(directory, {"step": 200}, name="step-200")
    assert again.name == "000000002-step-200" and latest_checkpoint(directory) == again


def test_a_failed_first_save_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "_write_durably", _fail_writing_half)
    with pytest.raises(CheckpointError, match="no earlier checkpoint"):
        save_checkpoint(tmp_path, {"step": 1}, name="step-1")
    assert list(tmp_path.iterdir()) == []
    assert latest_checkpoint(tmp_path) is None


def test_keep_removes_all_but_the_newest_whole_checkpoints(tmp_path):
    paths = [save_checkpoint(tmp_path, {"step": i}, name=f"step-{i}", keep=2) for i in range(5)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["000000004-step-3", "000000005-step-4"]
    assert latest_checkpoint(tmp_path) == paths[-1]
    assert load_checkpoint(paths[-2]) == {"step": 3}
    save_checkpoint(tmp_path, {"step": 5}, name="step-5", keep=1)
    assert [p.name for p in tmp_path.iterdir()] == ["000000006-step-5"]


def test_order_is_by_sequence_not_by_name(tmp_path):
    save_checkpoint(tmp_path, {"step": 2}, name="z-first", keep=5)
    newest = save_checkpoint(tmp_path, {"step": 1}, name="a-second", keep=5)
    assert latest_checkpoint(tmp_path) == newest


def test_keep_does_not_count_a_corrupt_checkpoint(tmp_path):
    whole = save_checkpoint(tmp_path, {"step": 1}, name="s1", keep=2)
    broken = save_checkpoint(tmp_path, {"step": 2}, name="s2", keep=2)
    (broken / TENSORS_FILE).write_bytes(b"garbage")
    newest = save_checkpoint(tmp_path, {"step": 3}, name="s3", keep=2)
    # the broken one is newer than the kept whole one: left for a person to look at
    assert sorted(tmp_path.iterdir()) == [whole, broken, newest]
    latest = save_checkpoint(tmp_path, {"step": 4}, name="s4", keep=2)
    assert sorted(tmp_path.iterdir()) == [newest, latest]


def test_pruning_never_removes_a_folder_with_foreign_files(tmp_path, caplog):
    foreign = tmp_path / "000000000-notes"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        path = save_checkpoint(tmp_path, {"step": 1}, name="s1", keep=1)
    assert (foreign / "notes.txt").read_text() == "mine"
    assert str(foreign) in caplog.text
    assert latest_checkpoint(tmp_path) == path


def _truncate(folder: Path) -> None:
    file = folder / TENSORS_FILE
    file.write_bytes(file.read_bytes()[:-7])


CORRUPTIONS = {
    "garbage": lambda folder: (folder / TENSORS_FILE).write_bytes(b"\x00garbage" * 3),
    "truncated": _truncate,
    "tensors_missing": lambda folder: (folder / TENSORS_FILE).unlink(),
    "json_missing": lambda folder: (folder / STATE_FILE).unlink(),
    "json_corrupt": lambda folder: (folder / STATE_FILE).write_text('{"format": "mtlrec-'),
    "json_other_format": lambda folder: (folder / STATE_FILE).write_text('{"format": 2}'),
}


@pytest.mark.parametrize("corrupt", list(CORRUPTIONS))
def test_latest_checkpoint_skips_a_broken_folder_with_a_warning(tmp_path, caplog, corrupt):
    older = save_checkpoint(tmp_path, {"w": torch.arange(100.0)}, name="step-1", keep=5)
    newer = save_checkpoint(tmp_path, {"w": torch.arange(200.0)}, name="step-2", keep=5)
    CORRUPTIONS[corrupt](newer)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert latest_checkpoint(tmp_path) == older
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert str(newer) in caplog.text
    assert torch.equal(load_checkpoint(older)["w"], torch.arange(100.0))
    broken_file = STATE_FILE if corrupt.startswith("json") else TENSORS_FILE
    with pytest.raises(CheckpointError, match=str(newer / broken_file)):
        load_checkpoint(newer)


def test_latest_checkpoint_of_nothing_is_none(tmp_path, caplog):
    assert latest_checkpoint(tmp_path / "absent") is None
    assert latest_checkpoint(tmp_path) is None
    only = save_checkpoint(tmp_path, {"step": 1}, name="s")
    (only / STATE_FILE).unlink()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert latest_checkpoint(tmp_path) is None
    assert str(only) in caplog.text


def test_temporary_folders_are_ignored_then_cleaned_up(tmp_path, caplog):
    whole = save_checkpoint(tmp_path, {"step": 1}, name="s1", keep=5)
    stale = tmp_path / ".tmp-000000002-s2-deadbeef"  # a save that died mid-way
    stale.mkdir()
    (stale / TENSORS_FILE).write_bytes(b"half")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert latest_checkpoint(tmp_path) == whole
    assert caplog.records == []
    newest = save_checkpoint(tmp_path, {"step": 2}, name="s2", keep=5)
    assert newest.name == "000000002-s2"
    assert sorted(tmp_path.iterdir()) == [whole, newest]


def test_corrupt_json_raises_naming_the_file(tmp_path):
    path = save_checkpoint(tmp_path, {"step": 1}, name="s")
    (path / STATE_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match=f"{path / STATE_FILE} is corrupt") as caught:
        load_checkpoint(path)
    assert isinstance(caught.value, MtlrecError)


def test_flipped_tensor_bytes_are_caught_on_load(tmp_path):
    path = save_checkpoint(tmp_path, {"w": torch.zeros(64)}, name="s")
    data = bytearray((path / TENSORS_FILE).read_bytes())
    data[-1] ^= 0xFF  # same size, header intact: only the SHA-256 tells
    (path / TENSORS_FILE).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"{path / TENSORS_FILE} is corrupt"):
        load_checkpoint(path)


def test_a_malformed_skeleton_raises_naming_the_file(tmp_path):
    path = save_checkpoint(tmp_path, {"a": np.arange(3)}, name="s")
    record = json.loads((path / STATE_FILE).read_text())
    record["state"]["dict"]["a"]["dtype"] = "|O"  # bytes must never become object pointers
    (path / STATE_FILE).write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match=f"{path / STATE_FILE}.*numpy dtype object"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="lack"):
        unpack({}, {"tensor": "0:state"})
    with pytest.raises(CheckpointError, match="unknown tag"):
        unpack({}, {"pickle": "..."})


def test_load_of_a_missing_folder_raises(tmp_path):
    with pytest.raises(CheckpointError, match="is not a checkpoint folder"):
        load_checkpoint(tmp_path / "absent")


class Color(enum.IntEnum):
    RED = 1


def _cycle() -> list:
    loop: list = []
    loop.append(loop)
    return loop


@pytest.mark.parametrize(
    "value, where",
    [
        ({1, 2}, "state['bad']"),
        (object(), "state['bad']"),
        (Color.RED, "state['bad']"),
        (collections.namedtuple("Pair", "a b")(1, 2), "state['bad']"),
        (collections.defaultdict(list), "state['bad']"),
        (np.array([object()]), "state['bad']"),
        ({"inner": [1, b"bytes"]}, "state['bad']['inner'][1]"),
        (torch.eye(2).to_sparse(), "state['bad']"),
        (_cycle(), "contains itself"),
        ({torch.zeros(1): 1}, "a key of state['bad']"),
    ],
    ids=[
        "set",
        "object",
        "int_enum",
        "namedtuple",
        "defaultdict",
        "object_array",
        "bytes",
        "sparse",
        "cycle",
        "tensor_key",
    ],
)
def test_values_a_checkpoint_cannot_hold_raise_config_error(tmp_path, value, where):
    with pytest.raises(ConfigError) as caught:
        save_checkpoint(tmp_path / "ck", {"bad": value}, name="s")
    assert where in str(caught.value)
    assert not (tmp_path / "ck").exists()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": ""},
        {"name": "../escape"},
        {"name": ".hidden"},
        {"name": "a/b"},
        {"name": "x" * 201},
        {"name": "s", "keep": 0},
        {"name": "s", "keep": 1.5},
    ],
)
def test_bad_name_or_keep_raise_config_error(tmp_path, kwargs):
    with pytest.raises(ConfigError):
        save_checkpoint(tmp_path, {"step": 1}, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_a_state_that_is_not_a_dict_raises(tmp_path):
    with pytest.raises(ConfigError, match="must be a dict"):
        save_checkpoint(tmp_path, [1, 2], name="s")  # type: ignore[arg-type]
