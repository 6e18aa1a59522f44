"""Benchmark data: where files come from (:mod:`.sources`) and how they are read."""

from lm_eval_bias.data.crows_pairs import (
    BIAS_TYPES,
    DIRECTIONS,
    REQUIRED_COLUMNS,
    crows_pairs_dataset,
    load_crows_pairs,
    normalize_bias_type,
)
from lm_eval_bias.data.sources import CANONICAL_FILES, DATA_DIR_ENV, benchmark_file
from lm_eval_bias.errors import BiasDataError, BiasDataFileNotFoundError

__all__ = [
    "BIAS_TYPES",
    "CANONICAL_FILES",
    "DATA_DIR_ENV",
    "DIRECTIONS",
    "REQUIRED_COLUMNS",
    "BiasDataError",
    "BiasDataFileNotFoundError",
    "benchmark_file",
    "crows_pairs_dataset",
    "load_crows_pairs",
    "normalize_bias_type",
]
