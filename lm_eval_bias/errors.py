"""Errors raised by lm_eval_bias."""

from __future__ import annotations


class BiasDataError(ValueError):
    """A problem with benchmark data: a missing, empty or malformed file.

    Messages name the file and, for a problem in one row, the row (counted as
    "data row N": the N-th record after the header, 1-based) together with the
    CSV's own index value, the bad value and the values that were expected.
    """


class BiasDataFileNotFoundError(BiasDataError, FileNotFoundError):
    """A benchmark data file is missing (or could not be downloaded)."""
