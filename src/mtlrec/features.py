"""Input feature specifications: what each column of the raw table is."""

from __future__ import annotations

from dataclasses import dataclass

from .exceptions import ConfigError


@dataclass(frozen=True)
class SparseFeature:
    """A categorical column, embedded through a vocabulary learned from the training data.

    Args:
        name: column name in the input table.
        embedding_dim: size of the embedding vector of each category.
    """

    name: str
    embedding_dim: int = 16

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not isinstance(self.embedding_dim, int) or self.embedding_dim < 1:
            raise ConfigError(
                f"SparseFeature {self.name!r}: embedding_dim must be a positive integer, "
                f"got {self.embedding_dim!r}"
            )


@dataclass(frozen=True)
class DenseFeature:
    """A numeric column, scaled by the preprocessor and fed to the model as one value."""

    name: str

    def __post_init__(self) -> None:
        _check_name(self.name)


Feature = SparseFeature | DenseFeature


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"a feature name must be a non-empty string, got {name!r}")


def feature_to_dict(feature: Feature) -> dict:
    """JSON-ready description of a feature."""
    if isinstance(feature, SparseFeature):
        return {"kind": "sparse", "name": feature.name, "embedding_dim": feature.embedding_dim}
    return {"kind": "dense", "name": feature.name}


def feature_from_dict(data: dict) -> Feature:
    """Inverse of :func:`feature_to_dict`."""
    kind = data.get("kind")
    if kind == "sparse":
        return SparseFeature(data["name"], embedding_dim=int(data["embedding_dim"]))
    if kind == "dense":
        return DenseFeature(data["name"])
    raise ConfigError(f"unknown feature kind {kind!r}; expected 'sparse' or 'dense'")


def check_features(features: list[Feature] | tuple[Feature, ...]) -> tuple[Feature, ...]:
    """Validate a feature list: non-empty, known kinds, unique names."""
    features = tuple(features)
    if not features:
        raise ConfigError("features: give at least one SparseFeature or DenseFeature")
    seen: set[str] = set()
    for feature in features:
        if not isinstance(feature, SparseFeature | DenseFeature):
            raise ConfigError(
                f"features: expected SparseFeature or DenseFeature, got {type(feature).__name__}"
            )
        if feature.name in seen:
            raise ConfigError(f"features: column {feature.name!r} is listed twice")
        seen.add(feature.name)
    return features
