"""Bundled and downloadable benchmark data sets."""

from .adult import ADULT_DENSE, ADULT_SPARSE, ADULT_TASKS, adult_features, adult_tasks, load_adult
from .census_kdd import (
    CENSUS_COLLEGE_EDUCATION,
    CENSUS_DENSE,
    CENSUS_GROUPS,
    CENSUS_KDD_DEFAULT_DIR,
    CENSUS_KDD_MD5,
    CENSUS_KDD_URL,
    CENSUS_SPARSE,
    CensusKDD,
    census_features,
    census_kdd_dir,
    census_tasks,
    load_census_kdd,
)
from .synthetic import (
    SYNTHETIC_TASKS,
    synthetic_correlated,
    synthetic_features,
    synthetic_label_correlation,
    synthetic_tasks,
    synthetic_weights,
)

__all__ = [
    "ADULT_DENSE",
    "ADULT_SPARSE",
    "ADULT_TASKS",
    "CENSUS_COLLEGE_EDUCATION",
    "CENSUS_DENSE",
    "CENSUS_GROUPS",
    "CENSUS_KDD_DEFAULT_DIR",
    "CENSUS_KDD_MD5",
    "CENSUS_KDD_URL",
    "CENSUS_SPARSE",
    "SYNTHETIC_TASKS",
    "CensusKDD",
    "adult_features",
    "adult_tasks",
    "census_features",
    "census_kdd_dir",
    "census_tasks",
    "load_adult",
    "load_census_kdd",
    "synthetic_correlated",
    "synthetic_features",
    "synthetic_label_correlation",
    "synthetic_tasks",
    "synthetic_weights",
]
