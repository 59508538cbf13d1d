"""Training checkpoints: a folder of safetensors (tensors) and JSON (everything else).

Nothing is ever pickled: :func:`pack` splits a nested state (dicts, lists, tuples, torch
tensors, numpy arrays and scalars, Python ``int``/``float``/``bool``/``str``/``None``) into
flat named tensors and a plain-JSON *skeleton* that refers to them by name; :func:`unpack`
puts them back together with the same nesting and types.

Layout of a checkpoint directory::

    <directory>/
        000000001-step-000000100/       <sequence, 9+ digits>-<name given by the caller>
            state.safetensors           every tensor and numpy array of the state
            state.json                  format markers, sequence, size and SHA-256 of
                                        state.safetensors, and the skeleton ("state")
        000000002-step-000000200/
        .tmp-000000003-step-000000300-<random>/   only while a save is in progress

The sequence number is one more than the highest already in the directory, so checkpoints
order by it (not by the caller's name or by file times). :func:`save_checkpoint` writes both
files into a temporary sibling folder on the same filesystem, flushes and fsyncs them,
renames the folder into place with :func:`os.replace` and fsyncs the directory; a crash or
a full disk at any point leaves either the whole new checkpoint or none of it, and every
earlier checkpoint untouched. Only after that are checkpoints older than the newest
``keep`` whole ones removed. One process writes to a directory at a time.

The skeleton's JSON (strict: no ``NaN`` literals) is made of plain values and these
tagged objects (every JSON object in it is one of them)::

    {"float": "nan" | "inf" | "-inf"}            a non-finite float
    {"tuple": [...]}                              a tuple
    {"dict": {"key": ...}}                        a dict whose keys are all str
    {"items": [[key, value], ...]}                any other dict (int keys, say)
        (either dict form has "ordered": true for an OrderedDict)
    {"tensor": "<name>"}                          a torch tensor
    {"ndarray": "<name>", "dtype": "<u4", "shape": [624]}   a numpy array (raw bytes)
    {"npscalar": "<name>", "dtype": "<f8"}        a numpy scalar (raw bytes)
"""

from __future__ import annotations

import collections
import errno
import hashlib
import json
import logging
import math
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from safetensors.torch import save as save_tensors

from ._version import __version__
from .exceptions import CheckpointError, ConfigError

logger = logging.getLogger(__name__)


FORMAT = "mtlrec-checkpoint"
FORMAT_VERSION = 1
TENSORS_FILE, STATE_FILE = "state.safetensors", "state.json"
CHECKPOINT_FILES = (TENSORS_FILE, STATE_FILE)
TMP_PREFIX = ".tmp-"
_FOLDER = re.compile(r"(\d{9,})-(.+)")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]{0,199}")
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
# numpy kinds whose values are plain bytes (dtype.str describes them fully)
_NUMPY_KINDS = frozenset("biufcSUmM")


# --- pack / unpack ----------------------------------------------------------------------


def pack(state: Any) -> tuple[dict[str, torch.Tensor], Any]:
    """Split a nested ``state`` into flat named CPU tensors and a JSON-ready skeleton.

    ``state`` may nest dicts (any hashable plain keys: ``int`` keys of an optimizer's
    ``state_dict()`` stay ``int``), lists and tuples of torch tensors, numpy arrays and
    scalars, and Python ``int``, ``float`` (NaN and infinities included), ``bool``,
    ``str`` and ``None``; a generator's ``get_state()`` is a uint8 tensor already.
    Tensors come back detached (an ``nn.Parameter`` as a plain tensor) and may share
    memory with ``state``; two references to one object come back as two copies. Any other
    type (a subclass of ``int``, ``str``, ``list`` or ``tuple`` too) raises ConfigError
    naming where in ``state`` it is.
    """
    tensors: dict[str, torch.Tensor] = {}
    storages: set[int] = set()
    return tensors, _pack(state, "state", tensors, storages, set())


def unpack(tensors: dict[str, torch.Tensor], skeleton: Any) -> Any:
    """The state :func:`pack` split into ``tensors`` and ``skeleton``: same nesting and
    types, tensors with their dtype and shape (the very tensors of ``tensors``), numpy
    arrays and scalars with their dtype. CheckpointError if the skeleton is malformed or
    names a tensor ``tensors`` lacks."""
    return _unpack(skeleton, tensors, "state")


def _where(path: str, key: Any) -> str:
    return f"{path}[{key!r}]"


def _pack(
    value: Any,
    path: str,
    tensors: dict[str, torch.Tensor],
    storages: set[int],
    open_containers: set[int],
) -> Any:
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        if math.isfinite(value):
            return value
        return {"float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, torch.Tensor):
        return {"tensor": _add_tensor(_cpu_tensor(value, path, storages), path, tensors)}
    if kind is np.ndarray or isinstance(value, np.generic):
        array = np.asarray(value)
        if array.dtype.kind not in _NUMPY_KINDS or array.dtype.fields is not None:
            raise ConfigError(
                f"{path} is a numpy value of dtype {array.dtype}, which a checkpoint cannot "
                "hold (only plain numeric, bool, bytes, str and datetime dtypes)"
            )
        raw = torch.from_numpy(np.frombuffer(array.tobytes(), dtype=np.uint8).copy())
        name = _add_tensor(raw, path, tensors)
        if kind is np.ndarray:
            return {"ndarray": name, "dtype": array.dtype.str, "shape": list(array.shape)}
        return {"npscalar": name, "dtype": array.dtype.str}
    if kind in (list, tuple, dict, collections.OrderedDict):
        if id(value) in open_containers:
            raise ConfigError(f"{path} contains itself; a checkpoint cannot hold a cycle")
        open_containers.add(id(value))
        try:
            if kind is list or kind is tuple:
                items = [
                    _pack(item, f"{path}[{i}]", tensors, storages, open_containers)
                    for i, item in enumerate(value)
                ]
                return items if kind is list else {"tuple": items}
            node: dict[str, Any]
            if all(type(key) is str for key in value):
                node = {
                    "dict": {
                        key: _pack(item, _where(path, key), tensors, storages, open_containers)
                        for key, item in value.items()
                    }
                }
            else:
                node = {
                    "items": [
                        [
                            _pack_key(key, path),
                            _pack(item, _where(path, key), tensors, storages, open_containers),
                        ]
                        for key, item in value.items()
                    ]
                }
            if kind is collections.OrderedDict:
                node["ordered"] = True
            return node
        finally:
            open_containers.discard(id(value))
    raise ConfigError(
        f"{path} is a {kind.__module__}.{kind.__qualname__}, which a checkpoint cannot hold: "
        "use dicts, lists, tuples, tensors, numpy arrays and int/float/bool/str/None "
        "(convert subclasses, e.g. an Enum to its value, a namedtuple to a tuple)"
    )


def _pack_key(key: Any, path: str) -> Any:
    """A dict key: a plain value or a tuple of them (no tensors or arrays)."""
    where = f"a key of {path}"
    if isinstance(key, (torch.Tensor, np.ndarray)):
        raise ConfigError(f"{where} is a {type(key).__name__}; a checkpoint cannot hold it")
    no_tensors: dict[str, torch.Tensor] = {}
    packed = _pack(key, where, no_tensors, set(), set())
    if no_tensors:  # a numpy scalar, or a tuple holding one
        raise ConfigError(f"{where} ({key!r}) holds a numpy value; use a plain Python value")
    return packed


def _cpu_tensor(value: torch.Tensor, path: str, storages: set[int]) -> torch.Tensor:
    """``value`` as a CPU tensor safetensors accepts: dense, contiguous, owning exactly its
    own storage (a view of a larger or a shared buffer is copied)."""
    if value.layout != torch.strided or value.is_meta or value.is_quantized or value.is_nested:
        raise ConfigError(
            f"{path} is a {value.layout} {value.device.type} tensor; a checkpoint holds dense "
            "tensors with data only (convert it, e.g. with .to_dense())"
        )
    tensor = value.detach().resolve_conj().resolve_neg().cpu()
    nbytes = tensor.numel() * tensor.element_size()
    storage = tensor.untyped_storage()
    if (
        nbytes == 0
        or not tensor.is_contiguous()
        or tensor.storage_offset() != 0
        or storage.nbytes() != nbytes
        or storage.data_ptr() in storages
    ):
        tensor = tensor.contiguous().clone()
    storages.add(tensor.untyped_storage().data_ptr())
    return tensor


def _add_tensor(tensor: torch.Tensor, path: str, tensors: dict[str, torch.Tensor]) -> str:
    # the counter keeps names unique; the path only helps a human reading the file
    name = f"{len(tensors)}:{path}"[:160]
    tensors[name] = tensor
    return name


def _unpack(node: Any, tensors: dict[str, torch.Tensor], path: str) -> Any:
    if node is None or type(node) in (bool, int, float, str):
        return node
    if type(node) is list:
        return [_unpack(item, tensors, f"{path}[{i}]") for i, item in enumerate(node)]
    if type(node) is not dict:
        raise _malformed(path, f"unexpected {type(node).__name__}")
    try:
        if "float" in node:
            return _NONFINITE[node["float"]]
        if "tuple" in node:
            return tuple(_unpack(node["tuple"], tensors, path))
        if "tensor" in node:
            return _tensor(tensors, node["tensor"], path)
        if "ndarray" in node or "npscalar" in node:
            raw = _tensor(tensors, node.get("ndarray", node.get("npscalar")), path)
            dtype = np.dtype(node["dtype"])
            # never view bytes as object pointers (or record fields) read from a file
            if dtype.kind not in _NUMPY_KINDS or dtype.fields is not None:
                raise _malformed(path, f"numpy dtype {dtype} is not one a checkpoint holds")
            if raw.dtype != torch.uint8 or raw.dim() != 1:
                raise _malformed(path, "a numpy value's tensor is not 1-d uint8 bytes")
            array = raw.numpy().view(dtype)
            if "npscalar" in node:
                return array.reshape(())[()]
            return array.reshape(node["shape"]).copy()
        mapping = dict if not node.get("ordered") else collections.OrderedDict
        if "dict" in node:
            return mapping(
                (key, _unpack(item, tensors, _where(path, key)))
                for key, item in node["dict"].items()
            )
        if "items" in node:
            result = mapping()
            for key, item in node["items"]:
                key = _unpack(key, tensors, f"a key of {path}")
                result[key] = _unpack(item, tensors, _where(path, key))
            return result
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise _malformed(path, f"{type(err).__name__}: {err}") from None
    raise _malformed(path, f"unknown tag {sorted(node)}")


def _tensor(tensors: dict[str, torch.Tensor], name: Any, path: str) -> torch.Tensor:
    if type(name) is not str or name not in tensors:
        raise _malformed(path, f"it names tensor {name!r}, which the tensors lack")
    return tensors[name]


def _malformed(path: str, why: str) -> CheckpointError:
    return CheckpointError(f"checkpoint skeleton is malformed at {path}: {why}")


# --- files ------------------------------------------------------------------------------


def save_checkpoint(
    directory: str | os.PathLike[str], state: dict[str, Any], *, name: str, keep: int = 2
) -> Path:
    """Write ``state`` as a new checkpoint folder ``directory/<sequence>-<name>`` and return
    its path; then remove checkpoints older than the newest ``keep`` whole ones.

    The write is atomic (see the module docstring). If it fails with an OSError (a full
    disk, say), nothing of it is left and CheckpointError names the directory and the
    error; the earlier checkpoints are kept as they were. ConfigError for a ``state`` that
    :func:`pack` cannot hold, a ``name`` other than letters, digits and ``._+=-`` (at most
    200, not starting with a dot), or ``keep`` < 1.
    """
    if type(name) is not str or not _NAME.fullmatch(name):
        raise ConfigError(
            f"checkpoint name {name!r} must be 1-200 letters, digits or ._+=- and start with "
            "a letter or digit (e.g. 'step-000000120')"
        )
    if type(keep) is not int or keep < 1:
        raise ConfigError(f"keep must be an int >= 1 (checkpoints to keep), got {keep!r}")
    if not isinstance(state, dict):
        raise ConfigError(f"a checkpoint state must be a dict, got {type(state).__name__}")
    tensors, skeleton = pack(state)
    try:
        data = save_tensors(tensors, metadata={"format": FORMAT})
    except Exception as err:  # an unsupported dtype raises a KeyError, for one
        raise ConfigError(
            f"safetensors cannot store a tensor of this state ({type(err).__name__}: {err}); "
            "convert it (a complex128 tensor with torch.view_as_real, say)"
        ) from None
    directory = Path(directory)
    folders: list[tuple[int, Path]] | None = None
    tmp: Path | None = None
    final: Path | None = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        folders = _checkpoint_folders(directory)
        sequence = folders[-1][0] + 1 if folders else 1
        record = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "mtlrec_version": __version__,
            "sequence": sequence,
            "name": name,
            "tensors": {
                "file": TENSORS_FILE,
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            },
            "state": skeleton,
        }
        text = json.dumps(record, allow_nan=False, separators=(",", ":"))
        tmp = directory / f"{TMP_PREFIX}{sequence:09d}-{name}-{secrets.token_hex(4)}"
        tmp.mkdir()
        _write_durably(tmp / TENSORS_FILE, data)
        _write_durably(tmp / STATE_FILE, text.encode())
        _fsync_directory(tmp)
        target = directory / f"{sequence:09d}-{name}"
        os.replace(tmp, target)
        final, tmp = target, None
        _fsync_directory(directory)
    except BaseException as err:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if not isinstance(err, OSError):
            raise
        if final is not None:  # renamed, but the rename may not survive a crash
            shutil.rmtree(final, ignore_errors=True)
        if folders is None:
            kept = "any earlier checkpoints in it are untouched"
        elif folders:
            kept = f"the previous checkpoint {folders[-1][1]} is kept"
        else:
            kept = "there was no earlier checkpoint in it; nothing was written"
        hint = " (free some disk space)" if err.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        raise CheckpointError(
            f"cannot save checkpoint {name!r} in {directory}: {err}{hint}; {kept}"
        ) from err
    assert final is not None
    _prune(directory, final, keep)
    return final


def latest_checkpoint(directory: str | os.PathLike[str]) -> Path | None:
    """The folder of the newest whole checkpoint in ``directory`` (highest sequence), or
    None if there is none. Temporary folders of unfinished saves are ignored; a folder
    whose files are missing, unreadable, truncated or of another format is skipped with a
    warning naming it. (Corrupt tensor bytes that keep the file's size and structure are
    found by :func:`load_checkpoint`, which checks the SHA-256.)"""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    try:
        folders = _checkpoint_folders(directory)
    except OSError as err:
        raise CheckpointError(f"cannot list checkpoint directory {directory}: {err}") from err
    for _, folder in reversed(folders):
        problem = _problem(folder)
        if problem is None:
            return folder
        logger.warning("skipping checkpoint %s: %s", folder, problem)
    return None


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The state saved in checkpoint folder ``path`` (tensors on CPU); CheckpointError
    naming the file for anything missing, corrupt or of another format version."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path} is not a checkpoint folder (see latest_checkpoint())")
    record = _record(path / STATE_FILE)
    tensors_file = path / TENSORS_FILE
    expected = record["tensors"]
    try:
        size, digest = _size_and_sha256(tensors_file)
    except OSError as err:
        raise CheckpointError(f"{tensors_file} cannot be read: {err}") from None
    if size != expected["bytes"] or digest != expected["sha256"]:
        raise CheckpointError(
            f"{tensors_file} is corrupt ({size:,} bytes, SHA-256 {digest[:12]}…; "
            f"{path / STATE_FILE} records {expected['bytes']:,} bytes, "
            f"{str(expected['sha256'])[:12]}…): use an earlier checkpoint"
        )
    try:
        tensors = load_file(str(tensors_file), device="cpu")
    except Exception as err:  # safetensors raises its own SafetensorError for bad files
        raise CheckpointError(
            f"{tensors_file} cannot be read ({type(err).__name__}: {err})"
        ) from None
    try:
        state = unpack(tensors, record["state"])
    except CheckpointError as err:
        raise CheckpointError(f"{path / STATE_FILE}: {err}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path / STATE_FILE} holds a {type(state).__name__}, not a dict")
    return state


def _checkpoint_folders(directory: Path) -> list[tuple[int, Path]]:
    """(sequence, folder) of every checkpoint-named folder in ``directory``, oldest first."""
    found = []
    for entry in os.scandir(directory):
        match = _FOLDER.fullmatch(entry.name)
        if match and entry.is_dir(follow_symlinks=False):
            found.append((int(match.group(1)), Path(entry.path)))
    return sorted(found)


def _record(file: Path) -> dict[str, Any]:
    """The parsed and checked ``state.json`` ``file``; CheckpointError naming it."""
    try:
        record = json.loads(file.read_bytes())
    except FileNotFoundError:
        raise CheckpointError(f"{file} is missing; the checkpoint is incomplete") from None
    except OSError as err:
        raise CheckpointError(f"{file} cannot be read: {err}") from None
    except (ValueError, RecursionError) as err:  # JSONDecodeError, UnicodeDecodeError
        raise CheckpointError(f"{file} is corrupt (not valid JSON: {err})") from None
    if not isinstance(record, dict):
        raise CheckpointError(f"{file} is corrupt (expected a JSON object)")
    if record.get("format") != FORMAT or record.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{file} has format {record.get('format')!r} version "
            f"{record.get('format_version')!r}; this mtlrec ({__version__}) reads {FORMAT!r} "
            f"version {FORMAT_VERSION} (written by mtlrec "
            f"{record.get('mtlrec_version', 'of an unknown version')})"
        )
    tensors = record.get("tensors")
    if (
        not isinstance(tensors, dict)
        or type(tensors.get("bytes")) is not int
        or type(tensors.get("sha256")) is not str
        or "state" not in record
    ):
        raise CheckpointError(f"{file} is corrupt (lacks 'tensors' bytes/sha256 or 'state')")
    return record


def _problem(folder: Path) -> str | None:
    """Why checkpoint ``folder`` is not whole (a cheap check: JSON parsed, safetensors
    header and size checked, tensor bytes not hashed), or None."""
    try:
        record = _record(folder / STATE_FILE)
    except CheckpointError as err:
        return str(err)
    file = folder / TENSORS_FILE
    try:
        size = file.stat().st_size
        with safe_open(str(file), framework="pt") as handle:
            handle.keys()
    except FileNotFoundError:
        return f"{file} is missing"
    except Exception as err:  # an OSError, or safetensors' SafetensorError
        return f"{file} cannot be read ({type(err).__name__}: {err})"
    if size != record["tensors"]["bytes"]:
        return f"{file} has {size:,} bytes, {record['tensors']['bytes']:,} were written"
    return None


def _prune(directory: Path, newest: Path, keep: int) -> None:
    """Remove checkpoint folders older than the newest ``keep`` whole ones (``newest``
    counts as whole, being just written), and the temporary folders of saves that died.
    Failures are logged, not raised: the new checkpoint is safe either way."""
    try:
        folders = [folder for _, folder in reversed(_checkpoint_folders(directory))]
        stale = [
            Path(entry.path)
            for entry in os.scandir(directory)
            if entry.name.startswith(TMP_PREFIX) and entry.is_dir(follow_symlinks=False)
        ]
    except OSError as err:
        logger.warning("cannot list %s to remove old checkpoints: %s", directory, err)
        return
    whole = 0
    for folder in folders:
        if whole >= keep:
            if _ours(folder):
                stale.append(folder)
            else:
                logger.warning("not removing %s: it holds files a checkpoint does not", folder)
        elif folder == newest or _problem(folder) is None:
            whole += 1
    for folder in stale:
        try:
            shutil.rmtree(folder)
        except OSError as err:
            logger.warning("cannot remove old checkpoint folder %s: %s", folder, err)
        else:
            logger.debug("removed old checkpoint folder %s", folder)


def _ours(folder: Path) -> bool:
    """Whether ``folder`` holds nothing but checkpoint files (so removing it loses nothing
    of anyone else's)."""
    try:
        return {entry.name for entry in os.scandir(folder)} <= set(CHECKPOINT_FILES)
    except OSError:
        return False


def _write_durably(file: Path, data: bytes) -> None:
    """Write ``data`` to new ``file`` and fsync it."""
    with open(file, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_directory(directory: Path) -> None:
    """fsync ``directory`` so the names in it (a rename, new files) survive a crash."""
    if os.name == "nt":  # Windows cannot open a directory; NTFS journals renames
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _size_and_sha256(file: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with open(file, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


class Checkpoints:
    """Where and how often a fit saves its training state, and which run it is.

    Args:
        directory: the checkpoint folder (created when missing).
        every: save every this many steps too (None: only after each epoch).
        run: what identifies the run (architecture, hyperparameters, features, tasks,
            optimisation, seed, data): a checkpoint of another run is refused on resume,
            naming each difference.
        keep: whole checkpoints kept (the newest).
        writes: whether this process writes (rank 0 of a multi-process fit only).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        every: int | None,
        run: dict[str, Any],
        keep: int = 2,
        writes: bool = True,
    ) -> None:
        if every is not None and (type(every) is not int or every < 1):
            raise ConfigError(f"checkpoint_every must be a positive number of steps, got {every!r}")
        self.directory, self.every, self.keep, self.writes = Path(directory), every, keep, writes
        self.run = json.loads(json.dumps(run, default=str))  # as it reads back
        self.last: Path | None = None

    def save(self, state: dict[str, Any], epoch: int, step: int) -> None:
        """Save ``state`` (taken at ``step`` of ``epoch``; 0 after the epoch)."""
        if not self.writes:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{epoch:04d}-step-{step:09d}" if step else f"epoch-{epoch:04d}-end"
        self.last = save_checkpoint(
            self.directory, {"run": self.run, "state": state}, name=name, keep=self.keep
        )
        logger.info("checkpoint written: %s", self.last)

    def resume_state(self) -> dict[str, Any] | None:
        """The training state of the newest whole checkpoint of this run; None when the
        folder holds none. CheckpointError when it belongs to another run."""
        if not self.directory.exists():
            return None
        path = latest_checkpoint(self.directory)
        if path is None:
            return None
        saved = load_checkpoint(path)
        differences = _differences(saved.get("run", {}), self.run)
        if differences:
            raise CheckpointError(
                f"{path} belongs to another run; resuming would mix them: "
                + "; ".join(differences)
                + ". Resume with the settings it was made with, or give another "
                "checkpoint folder (or resume=False to start over there)"
            )
        logger.info("resuming from %s", path)
        return saved["state"]


def _differences(saved: Any, current: Any, where: str = "") -> list[str]:
    """Each place where two JSON-like values differ, as 'where: saved X, now Y'."""
    if isinstance(saved, dict) and isinstance(current, dict):
        found = []
        for key in sorted(set(saved) | set(current), key=str):
            found += _differences(saved.get(key), current.get(key), f"{where}{key}.")
        return found
    if saved != current:
        return [f"{where.rstrip('.') or 'run'}: saved {saved!r}, now {current!r}"]
    return []
