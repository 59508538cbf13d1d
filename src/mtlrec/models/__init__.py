"""Sharing architectures, one per file, and the registry that builds them by name.

Adding an architecture is one file here: a config dataclass and a network class
decorated with ``@ARCHITECTURES.register("name")`` (modules are imported on the first
registry lookup). ``mtlrec.create_model``, ``mtlrec models`` and the estimator classes
(``mtlrec.MMoE``, ...) all come from the registry.
"""

from __future__ import annotations

from ..exceptions import ConfigError
from .base import ARCHITECTURES, InputSpec, MultiTaskNetwork, NetworkConfig, Outputs


def list_models() -> list[str]:
    """Names of every registered architecture."""
    return ARCHITECTURES.names()


def network_class(name: str) -> type[MultiTaskNetwork]:
    """The network class registered as ``name``."""
    return ARCHITECTURES.get(name)


def declared_sizes(attribute: str, known: dict[str, dict]) -> dict[str, dict]:
    """``known`` followed by the sizes every other architecture's config declares in the
    class attribute ``attribute`` (``"reference"``, ``"reference_synthetic"``), in
    registry order; an architecture whose attribute is None is left out."""
    declared = {
        name: dict(sizes)
        for name in list_models()
        if name not in known
        and (sizes := getattr(network_class(name).config_class, attribute)) is not None
    }
    return {**known, **declared}


def make_config(name: str, params: dict, num_tasks: int) -> NetworkConfig:
    """Validated hyperparameters of architecture ``name`` from keyword arguments."""
    config_class = network_class(name).config_class
    known = set(config_class.__dataclass_fields__)
    unknown = sorted(set(params) - known)
    if unknown:
        raise ConfigError(
            f"{name}: unknown hyperparameter(s) {unknown}; valid ones are {sorted(known)}"
        )
    config = config_class(**params)
    config.validate(num_tasks)
    return config


__all__ = [
    "ARCHITECTURES",
    "InputSpec",
    "MultiTaskNetwork",
    "NetworkConfig",
    "Outputs",
    "declared_sizes",
    "list_models",
    "make_config",
    "network_class",
]
