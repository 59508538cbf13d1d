"""Sharing architectures, one per file, and the registry that builds them by name."""

from __future__ import annotations

from ..exceptions import ConfigError
from .base import InputSpec, MultiTaskNetwork, NetworkConfig
from .esmm import ESMMConfig, ESMMNet
from .moe import MMoENet, MoEConfig, OMoENet
from .ple import CGCConfig, CGCNet, PLEConfig, PLENet
from .shared_bottom import SharedBottomConfig, SharedBottomNet
from .single_task import SingleTaskConfig, SingleTaskNet

#: architecture name -> network class (its ``config_class`` holds the hyperparameters)
ARCHITECTURES: dict[str, type[MultiTaskNetwork]] = {
    "single_task": SingleTaskNet,
    "shared_bottom": SharedBottomNet,
    "omoe": OMoENet,
    "mmoe": MMoENet,
    "cgc": CGCNet,
    "ple": PLENet,
    "esmm": ESMMNet,
}


def list_models() -> list[str]:
    """Names of every registered architecture."""
    return list(ARCHITECTURES)


def network_class(name: str) -> type[MultiTaskNetwork]:
    """The network class registered as ``name``."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ConfigError(f"unknown architecture {name!r}; choose one of {list_models()}") from None


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
    "CGCConfig",
    "CGCNet",
    "ESMMConfig",
    "ESMMNet",
    "InputSpec",
    "MMoENet",
    "MoEConfig",
    "MultiTaskNetwork",
    "NetworkConfig",
    "OMoENet",
    "PLEConfig",
    "PLENet",
    "SharedBottomConfig",
    "SharedBottomNet",
    "SingleTaskConfig",
    "SingleTaskNet",
    "list_models",
    "make_config",
    "network_class",
]
