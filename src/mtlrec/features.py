"""Input feature specifications: what each column of the raw table is.

Three kinds: :class:`SparseFeature` (one category per row), :class:`SequenceFeature`
(a list of categories per row: a user's history, an item's tags) and
:class:`DenseFeature` (one number). Every feature may name a ``group`` (an entity such
as "user", "item", "context") that experts can be bound to
(``entity_experts=``, :mod:`mtlrec.models.base`).

Categorical features (sparse and sequence) control their vocabulary: ``min_count``
(rarer values are unknown), ``max_size`` (keep the most frequent), ``hash_buckets``
(no stored vocabulary: a stable hash, :mod:`mtlrec.vocabulary`), or ``shares`` (use
another feature's vocabulary and embedding table, fitted over both columns).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .exceptions import ConfigError

#: how a sequence's item embeddings become one vector
POOLINGS = ("mean", "sum", "max", "attention")
DEFAULT_EMBEDDING_DIM = 16


def _check_group(owner: str, group: object) -> None:
    if group is not None and (not isinstance(group, str) or not group):
        raise ConfigError(f"{owner}: group must be a non-empty string or None, got {group!r}")


@dataclass(frozen=True)
class _Categorical:
    """Options shared by sparse and sequence features (see the module docstring)."""

    name: str
    embedding_dim: int | None = None
    group: str | None = None
    shares: str | None = None
    min_count: int = 1
    max_size: int | None = None
    hash_buckets: int | None = None

    kind = "categorical"

    def __post_init__(self) -> None:
        _check_name(self.name)
        owner = f"{type(self).__name__} {self.name!r}"
        dim = self.embedding_dim
        if dim is not None and (not isinstance(dim, int) or isinstance(dim, bool) or dim < 1):
            raise ConfigError(f"{owner}: embedding_dim must be a positive integer, got {dim!r}")
        _check_group(owner, self.group)
        if self.shares is not None and (not isinstance(self.shares, str) or not self.shares):
            raise ConfigError(f"{owner}: shares must name another feature, got {self.shares!r}")
        if dim is None and self.shares is None:  # unshared: its own table, 16 by default
            object.__setattr__(self, "embedding_dim", DEFAULT_EMBEDDING_DIM)
        if self.shares == self.name:
            raise ConfigError(f"{owner}: shares names the feature itself; name another feature")
        if (
            not isinstance(self.min_count, int)
            or isinstance(self.min_count, bool)
            or self.min_count < 1
        ):
            raise ConfigError(f"{owner}: min_count must be an integer >= 1, got {self.min_count!r}")
        for option in ("max_size", "hash_buckets"):
            value = getattr(self, option)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1
            ):
                raise ConfigError(
                    f"{owner}: {option} must be a positive integer or None, got {value!r}"
                )
        if self.hash_buckets is not None and (self.min_count > 1 or self.max_size is not None):
            raise ConfigError(
                f"{owner}: hash_buckets keeps no vocabulary, so min_count and max_size do not "
                "apply; give one or the other"
            )
        if self.shares is not None and self.has_vocabulary_options:
            raise ConfigError(
                f"{owner}: it shares {self.shares!r}'s vocabulary, so set min_count, max_size "
                f"and hash_buckets on {self.shares!r} instead"
            )

    @property
    def dim(self) -> int:
        """The embedding size (``embedding_dim``, 16 when unset)."""
        return DEFAULT_EMBEDDING_DIM if self.embedding_dim is None else self.embedding_dim

    @property
    def has_vocabulary_options(self) -> bool:
        return self.min_count > 1 or self.max_size is not None or self.hash_buckets is not None


@dataclass(frozen=True)
class SparseFeature(_Categorical):
    """A categorical column (one value per row), embedded through a vocabulary learned
    from the training data.

    Args:
        name: column name in the input table.
        embedding_dim: size of the embedding vector of each category (default 16; with
            ``shares``, the shared feature's).
        group: the entity the column describes ("user", "item", ...), or None.
        shares: another categorical feature whose vocabulary and table this one uses.
        min_count: values seen fewer times in training are unknown.
        max_size: keep only the most frequent values (ties: the smaller key).
        hash_buckets: no vocabulary: each value goes to one of this many buckets by a
            stable hash (the same in every process and platform).
    """

    kind = "sparse"


@dataclass(frozen=True)
class SequenceFeature(_Categorical):
    """A column of lists of categories (a user's recent items, an item's tags), pooled
    into one vector per row.

    Cells are lists or arrays (oldest first), Arrow ``list`` values, or strings joined
    by ``separator`` (CSV). An empty list, an empty string and a missing value all mean
    "no items" and pool to zeros. Only the ``max_len`` most recent items are kept.

    Args:
        name: column name in the input table.
        max_len: the most items kept per row (the last ones).
        pooling: ``"mean"``, ``"sum"``, ``"max"`` over the real items, or
            ``"attention"``: target attention (DIN, Zhou et al., KDD 2018) against the
            embedding of the sparse feature ``target``.
        embedding_dim, group, shares, min_count, max_size, hash_buckets: as for
            :class:`SparseFeature`.
        target: the candidate-item sparse feature attention scores the items against.
        separator: what joins the items of a string cell.
    """

    max_len: int = 50
    pooling: str = "mean"
    target: str | None = None
    separator: str = "|"

    kind = "sequence"

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = f"SequenceFeature {self.name!r}"
        if not isinstance(self.max_len, int) or isinstance(self.max_len, bool) or self.max_len < 1:
            raise ConfigError(f"{owner}: max_len must be a positive integer, got {self.max_len!r}")
        if self.pooling not in POOLINGS:
            raise ConfigError(
                f"{owner}: pooling must be one of {list(POOLINGS)}, got {self.pooling!r}"
            )
        if (self.pooling == "attention") != (self.target is not None):
            raise ConfigError(
                f"{owner}: pooling='attention' needs target= (the candidate item's sparse "
                "feature), and target= is only used by attention pooling"
            )
        if not isinstance(self.separator, str) or not self.separator:
            raise ConfigError(f"{owner}: separator must be a non-empty string")


@dataclass(frozen=True)
class DenseFeature:
    """A numeric column, scaled by the preprocessor and fed to the model as one value.

    Args:
        name: column name in the input table.
        group: the entity the column describes ("user", "item", ...), or None.
    """

    name: str
    group: str | None = None

    kind = "dense"

    def __post_init__(self) -> None:
        _check_name(self.name)
        _check_group(f"DenseFeature {self.name!r}", self.group)


Feature = SparseFeature | SequenceFeature | DenseFeature
#: feature kind (as saved) -> class; a new input kind registers its spec here
KINDS: dict[str, type] = {cls.kind: cls for cls in (SparseFeature, SequenceFeature, DenseFeature)}


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"a feature name must be a non-empty string, got {name!r}")


def feature_to_dict(feature: Feature) -> dict:
    """JSON-ready description of a feature: its kind, name and every option that differs
    from the default (so bundles of features without new options read as before)."""
    state: dict[str, Any] = {"kind": feature.kind, "name": feature.name}
    for f in dataclasses.fields(feature):
        value = getattr(feature, f.name)
        if f.name != "name" and value != f.default:
            state[f.name] = value
    return state


def feature_from_dict(data: dict) -> Feature:
    """Inverse of :func:`feature_to_dict`."""
    kind = data.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"unknown feature kind {kind!r}; expected one of {sorted(KINDS)}")
    cls = KINDS[kind]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known - {"kind"}
    if unknown:
        raise ConfigError(
            f"feature {data.get('name')!r}: options {sorted(unknown)} are unknown to this "
            "mtlrec; a newer mtlrec may have written them"
        )
    return cls(**{k: v for k, v in data.items() if k != "kind"})


def check_features(features: list[Feature] | tuple[Feature, ...]) -> tuple[Feature, ...]:
    """Validate a feature list: non-empty, known kinds, unique names, and ``shares`` /
    ``target`` naming categorical features of the right kind and size. Features that
    share a table take its embedding size when they leave theirs unset."""
    features = tuple(features)
    if not features:
        raise ConfigError(
            "features: give at least one SparseFeature, SequenceFeature or DenseFeature"
        )
    by_name: dict[str, Feature] = {}
    for feature in features:
        if not isinstance(feature, tuple(KINDS.values())):
            raise ConfigError(
                "features: expected SparseFeature, SequenceFeature or DenseFeature, got "
                f"{type(feature).__name__}"
            )
        if feature.name in by_name:
            raise ConfigError(f"features: column {feature.name!r} is listed twice")
        by_name[feature.name] = feature
    resolved = []
    for feature in features:
        if isinstance(feature, _Categorical) and feature.shares is not None:
            owner = _categorical(by_name, feature.shares, f"{feature.name!r} shares")
            if owner.shares is not None:
                raise ConfigError(
                    f"feature {feature.name!r} shares {owner.name!r}, which itself shares "
                    f"{owner.shares!r}; write shares={owner.shares!r}"
                )
            if feature.embedding_dim is None:
                feature = dataclasses.replace(feature, embedding_dim=owner.dim)
            elif feature.dim != owner.dim:
                raise ConfigError(
                    f"feature {feature.name!r} shares {owner.name!r}'s table, so its "
                    f"embedding_dim must be {owner.dim} (got {feature.dim}); leave it unset"
                )
        resolved.append(feature)
    by_name = {f.name: f for f in resolved}
    for feature in resolved:
        if isinstance(feature, SequenceFeature) and feature.target is not None:
            target = _categorical(by_name, feature.target, f"{feature.name!r} attends to target")
            if not isinstance(target, SparseFeature) or target.dim != feature.dim:
                raise ConfigError(
                    f"SequenceFeature {feature.name!r}: target {feature.target!r} must be a "
                    f"SparseFeature with embedding_dim {feature.dim}"
                )
    return tuple(resolved)


def _categorical(by_name: dict[str, Feature], name: str, what: str) -> _Categorical:
    if name not in by_name:
        raise ConfigError(
            f"feature {what} {name!r}, which is not among the features "
            f"({sorted(by_name)}); add it or fix the name"
        )
    feature = by_name[name]
    if not isinstance(feature, _Categorical):
        raise ConfigError(
            f"feature {what} {name!r}, a DenseFeature; only a SparseFeature or "
            "SequenceFeature has a vocabulary and an embedding table"
        )
    return feature


def groups_of(features: tuple[Feature, ...]) -> list[str]:
    """The distinct groups the features name, in first-seen order."""
    return list(dict.fromkeys(f.group for f in features if f.group is not None))


def column_features(
    sparse: Sequence[str],
    dense: Sequence[str],
    embedding_dim: int,
    groups: Mapping[str, Sequence[str]],
) -> list[Feature]:
    """Sparse then dense specs of a table's columns, each in the group ``groups``
    (group -> columns) puts it in, if any."""
    group = {name: g for g, names in groups.items() for name in names}
    return [
        SparseFeature(name, embedding_dim=embedding_dim, group=group.get(name)) for name in sparse
    ] + [DenseFeature(name, group=group.get(name)) for name in dense]
