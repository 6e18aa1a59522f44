"""`lm-eval-bias`: what the harness's own `lm_eval` command does not do.

Each subcommand lives in its own module, which exposes `add_parser(subparsers)`; the
parser it adds sets `run=function(args) -> exit status`. Adding a subcommand is one row
in SUBCOMMANDS.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from lm_eval_bias._plugin_hook import one_line, want_traceback
from lm_eval_bias.errors import BiasError

SUBCOMMANDS = (
    "lm_eval_bias.commands.methods",
    "lm_eval_bias.commands.check_data",
    "lm_eval_bias.commands.study",
    "lm_eval_bias.commands.leaderboard",
    "lm_eval_bias.commands.plot",
    "lm_eval_bias.commands.distill",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lm-eval-bias", description="Bias benchmarks for compressed language models.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        importlib.import_module(module).add_parser(subparsers)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (BiasError, ValueError, FileNotFoundError) as error:
        if want_traceback(argv):
            raise
        print(one_line(error), file=sys.stderr)  # docs/errors.md; LM_EVAL_BIAS_TRACEBACK=1 adds the traceback
        return 2


if __name__ == "__main__":
    sys.exit(main())
