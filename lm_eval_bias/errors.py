"""Errors raised by lm_eval_bias.

Every error meant for the user derives from :class:`BiasError`. Through the stock ``lm_eval``
command (``lm_eval_bias._plugin_hook`` installs a ``sys.excepthook``) and ``lm-eval-bias``,
such an error is printed as one line, ``lm-eval-bias: <message>``, with exit status 1 (2 from
``lm-eval-bias``); ``LM_EVAL_BIAS_TRACEBACK=1`` in the environment, or lm-eval's
``--verbosity DEBUG`` (``LMEVAL_LOG_LEVEL=DEBUG``), prints the traceback as well. Errors that
are not ours keep Python's own report. docs/errors.md lists the messages.
"""

from __future__ import annotations

TRACEBACK_ENV = "LM_EVAL_BIAS_TRACEBACK"


class BiasError(Exception):
    """Base of the errors lm_eval_bias reports to the user as one line (see the module docstring)."""


class BiasDataError(BiasError, ValueError):
    """A problem with benchmark data: a missing, empty or malformed file.

    Messages name the file and, for a problem in one row, the row (counted as
    "data row N": the N-th record after the header, 1-based) together with the
    CSV's own index value, the bad value and the values that were expected.
    """


class BiasDataFileNotFoundError(BiasDataError, FileNotFoundError):
    """A benchmark data file is missing (or could not be downloaded)."""


class BiasOptionError(BiasError, ValueError):
    """A bad option: a model_args key or value, a ``--metadata`` key or value, or a command-line
    option; the message names the option and its valid values."""


class BiasInputTooLongError(BiasError, ValueError):
    """A benchmark input is longer than the model's context (the message names the row and both lengths)."""


class GroupMetricError(BiasError, RuntimeError):
    """A group's pooled metrics could not be computed; the run stops rather than publish plain means."""


def did_you_mean(name: str, valid) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``valid`` to ``name``, or "" when none is close.

    Args:
        name: the unknown name as given.
        valid: the names that would have been accepted.

    Returns:
        The suffix to append to an error message.
    """
    import difflib

    close = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
