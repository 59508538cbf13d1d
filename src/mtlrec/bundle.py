"""Saved models: a folder of JSON (config, preprocessor) and safetensors (weights).

Loading never unpickles: JSON is parsed and safetensors holds raw tensors only. This
module reads and writes the files; the estimator turns them into a model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from ._version import __version__
from .exceptions import BundleError, ConfigError
from .preprocessing import Preprocessor

FORMAT = "mtlrec-bundle"
FORMAT_VERSION = 1
CONFIG_FILE, PREPROCESSOR_FILE, WEIGHTS_FILE = (
    "config.json",
    "preprocessor.json",
    "weights.safetensors",
)
BUNDLE_FILES = (CONFIG_FILE, PREPROCESSOR_FILE, WEIGHTS_FILE)


def existing_bundle(path: Path) -> list[str]:
    """The bundle files already in folder ``path``."""
    return [name for name in BUNDLE_FILES if (path / name).exists()]


def write_bundle(
    path: Path,
    config: dict[str, Any],
    preprocessor: Preprocessor,
    weights: dict[str, torch.Tensor],
    overwrite: bool = False,
) -> Path:
    """Write a bundle into folder ``path``; an existing bundle is kept unless ``overwrite``.

    ``config`` gets the format markers added; each file is written through a temporary
    file, so a crash never leaves half a file behind.
    """
    existing = existing_bundle(path)
    if existing and not overwrite:
        raise FileExistsError(
            f"{path} already holds a saved model ({', '.join(existing)}); "
            "pass overwrite=True (CLI: --overwrite) or choose another folder"
        )
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path} is a file; give a folder path for the bundle")
    path.mkdir(parents=True, exist_ok=True)
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "mtlrec_version": __version__,
        **config,
    }
    # clone: parameters may be views of one flat training buffer, which safetensors refuses
    weights = {k: v.detach().cpu().clone() for k, v in weights.items()}
    _write(path / CONFIG_FILE, lambda p: p.write_text(json.dumps(config, indent=2)))
    _write(path / PREPROCESSOR_FILE, lambda p: p.write_text(json.dumps(preprocessor.to_dict())))
    # written as bytes, like its siblings: safetensors' own file writer makes it 0600
    data = save(weights, metadata={"format": FORMAT})
    _write(path / WEIGHTS_FILE, lambda p: p.write_bytes(data))
    return path


def written_by(config: dict[str, Any]) -> str:
    """Which mtlrec wrote a bundle's ``config``, against this one, for messages about
    what this version does not know."""
    version = config.get("mtlrec_version", "an unknown version")
    return (
        f"the bundle was written by mtlrec {version} and this is mtlrec {__version__}: "
        "a newer mtlrec may be needed to load it"
    )


def _write(target: Path, writer: Callable[[Path], object]) -> None:
    tmp = target.with_name(target.name + ".tmp")
    writer(tmp)
    os.replace(tmp, target)


def _json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleError(
            f"{path} is corrupt (not valid JSON: {err}); save the model again"
        ) from None
    if not isinstance(value, dict):
        raise BundleError(f"{path} is corrupt (expected a JSON object); save the model again")
    return value


def read_bundle(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[dict[str, Any], Preprocessor, dict[str, torch.Tensor]]:
    """(config, preprocessor, weights) of the bundle in folder ``path``; BundleError
    naming the file for anything missing, corrupt or of another format version."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"{path} is not a folder; give the folder written by model.save()")
    missing = [name for name in BUNDLE_FILES if not (path / name).is_file()]
    if missing:
        raise BundleError(
            f"bundle {path} is missing {', '.join(missing)}; save the model again "
            f"(a bundle holds {', '.join(BUNDLE_FILES)})"
        )
    config = _json(path / CONFIG_FILE)
    if config.get("format") != FORMAT or config.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{path / CONFIG_FILE} has format {config.get('format')!r} version "
            f"{config.get('format_version')!r}; this mtlrec ({__version__}) reads {FORMAT!r} "
            f"version {FORMAT_VERSION}: re-save it with a matching mtlrec version"
        )
    for key in ("architecture", "hyperparameters"):
        if key not in config:
            raise BundleError(f"{path / CONFIG_FILE} lacks {key!r}; save the model again")
    try:
        preprocessor = Preprocessor.from_dict(_json(path / PREPROCESSOR_FILE))
    except BundleError as err:
        raise BundleError(f"{path / PREPROCESSOR_FILE}: {err}") from None
    except ConfigError as err:  # a task type (head) or feature this mtlrec does not know
        raise BundleError(f"{path / PREPROCESSOR_FILE}: {err}; {written_by(config)}") from None
    weights_file = path / WEIGHTS_FILE
    try:
        weights = load_file(str(weights_file), device=str(device))
    except Exception as err:  # safetensors raises its own SafetensorError for bad files
        size = weights_file.stat().st_size
        raise BundleError(
            f"{weights_file} cannot be read ({size:,} bytes; {type(err).__name__}: {err}): "
            "the file is truncated or corrupt; save the model again"
        ) from None
    return config, preprocessor, weights
