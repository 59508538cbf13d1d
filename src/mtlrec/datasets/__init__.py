"""Bundled and downloadable benchmark data sets."""

from .adult import ADULT_DENSE, ADULT_SPARSE, ADULT_TASKS, adult_features, adult_tasks, load_adult

__all__ = [
    "ADULT_DENSE",
    "ADULT_SPARSE",
    "ADULT_TASKS",
    "adult_features",
    "adult_tasks",
    "load_adult",
]
