"""`lm-eval-bias`: what the harness's own `lm_eval` command does not do.

    lm-eval-bias methods            compression methods and their options
    lm-eval-bias check-data [DIR]   validate the benchmark files a run would read
"""

from __future__ import annotations

import argparse
import sys


def list_methods(_args) -> int:
    from lm_eval_bias.model_wrappers.quantizers.auto import QUANTIZERS

    for name, cls in QUANTIZERS.items():
        options = ", ".join(cls.options) or "-"
        devices = ", ".join(cls.devices) if cls.devices else "any"
        print(f"{name:<14} devices: {devices:<10} options: {options}")
    return 0


def check_data(args) -> int:
    from lm_eval_bias.data.crows_pairs import load_crows_pairs
    from lm_eval_bias.data.sources import benchmark_file

    path = benchmark_file("crows_pairs", data_dir=args.data_dir)
    frame = load_crows_pairs(path)
    print(f"{path}: {len(frame)} CrowS-Pairs pairs")
    for bias_type, count in frame["bias_type"].value_counts().items():
        print(f"  {bias_type:<20} {count}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lm-eval-bias", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("methods", help="list compression methods").set_defaults(run=list_methods)
    check = commands.add_parser("check-data", help="validate benchmark files")
    check.add_argument("data_dir", nargs="?", help="folder laid out like ../shared/data (default: $LM_EVAL_BIAS_DATA_DIR)")
    check.set_defaults(run=check_data)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"lm-eval-bias: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
