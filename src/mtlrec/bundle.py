"""Saved models: a folder of JSON (config, preprocessor) and safetensors (weights).

Loading never unpickles: JSON is parsed and safetensors holds raw tensors only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from safetensors.torch import load_file, save_file

from . import __version__
from .exceptions import BundleError
from .preprocessing import Preprocessor

if TYPE_CHECKING:
    from .estimator import MultiTaskModel

FORMAT = "mtlrec-bundle"
FORMAT_VERSION = 1
CONFIG_FILE, PREPROCESSOR_FILE, WEIGHTS_FILE = (
    "config.json",
    "preprocessor.json",
    "weights.safetensors",
)
BUNDLE_FILES = (CONFIG_FILE, PREPROCESSOR_FILE, WEIGHTS_FILE)


def save_bundle(model: MultiTaskModel, path: Path, overwrite: bool = False) -> Path:
    """Write ``model`` to the folder ``path``; an existing bundle is kept unless ``overwrite``."""
    network = model.network
    existing = [name for name in BUNDLE_FILES if (path / name).exists()]
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
        "architecture": model.architecture,
        "hyperparameters": model.config.to_dict(),
        "seed": model.seed,
    }
    # clone: parameters may be views of one flat training buffer, which safetensors refuses
    weights = {k: v.detach().cpu().clone() for k, v in network.state_dict().items()}
    _write(path / CONFIG_FILE, lambda p: p.write_text(json.dumps(config, indent=2)))
    _write(
        path / PREPROCESSOR_FILE, lambda p: p.write_text(json.dumps(model.preprocessor.to_dict()))
    )
    _write(path / WEIGHTS_FILE, lambda p: save_file(weights, str(p), metadata={"format": FORMAT}))
    return path


def _write(target: Path, writer) -> None:
    """Write through a temporary file, so a crash never leaves half a file behind."""
    tmp = target.with_name(target.name + ".tmp")
    writer(tmp)
    os.replace(tmp, target)


def load_bundle(path: str | Path, device: str = "cpu") -> MultiTaskModel:
    """Load a model saved with :meth:`MultiTaskModel.save`."""
    from .estimator import MultiTaskModel

    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"{path} is not a folder; give the folder written by model.save()")
    missing = [name for name in BUNDLE_FILES if not (path / name).is_file()]
    if missing:
        raise BundleError(
            f"bundle {path} is missing {', '.join(missing)}; save the model again "
            f"(a bundle holds {', '.join(BUNDLE_FILES)})"
        )
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
        pre_dict = json.loads((path / PREPROCESSOR_FILE).read_text())
    except json.JSONDecodeError as err:
        raise BundleError(f"bundle {path}: a JSON file is corrupt ({err})") from None
    if config.get("format") != FORMAT or config.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"bundle {path} has format {config.get('format')!r} version "
            f"{config.get('format_version')!r}; this mtlrec ({__version__}) reads {FORMAT!r} "
            f"version {FORMAT_VERSION}: re-save it with a matching mtlrec version"
        )
    preprocessor = Preprocessor.from_dict(pre_dict)
    model = MultiTaskModel(
        list(preprocessor.features),
        list(preprocessor.tasks),
        architecture=config["architecture"],
        scaling=preprocessor.scaling,
        seed=config.get("seed", 0),
        device=device,
        **config["hyperparameters"],
    )
    model.preprocessor = preprocessor
    network = model.build()
    try:
        network.load_state_dict(load_file(str(path / WEIGHTS_FILE), device=str(model.device)))
    except RuntimeError as err:
        raise BundleError(f"bundle {path}: weights do not fit the saved config ({err})") from None
    network.eval()
    return model
