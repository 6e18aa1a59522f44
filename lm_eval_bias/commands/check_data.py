"""`lm-eval-bias check-data [DIR]`: validate the benchmark files a run would read."""


def run(args) -> int:
    from lm_eval_bias.data.crows_pairs import load_crows_pairs
    from lm_eval_bias.data.sources import benchmark_file

    path = benchmark_file("crows_pairs", data_dir=args.data_dir)
    frame = load_crows_pairs(path)
    print(f"{path}: {len(frame)} CrowS-Pairs pairs")
    for bias_type, count in frame["bias_type"].value_counts().items():
        print(f"  {bias_type:<20} {count}")
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("check-data", help="validate benchmark files")
    parser.add_argument("data_dir", nargs="?", help="folder laid out like ../shared/data (default: $LM_EVAL_BIAS_DATA_DIR)")
    parser.set_defaults(run=run)
