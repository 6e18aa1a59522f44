"""`lm-eval-bias`: what the harness's own `lm_eval` command does not do.

Each subcommand lives in its own module, which exposes `add_parser(subparsers)`; the
parser it adds sets `run=function(args) -> exit status`. Adding a subcommand is one row
in SUBCOMMANDS.
"""

from __future__ import annotations

import argparse
import importlib
import sys

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
    except (ValueError, FileNotFoundError) as error:
        print(f"lm-eval-bias: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
