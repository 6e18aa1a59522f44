"""`lm-eval-bias plot DIR`: figures of bias through pretraining, against bits, LMS vs SS, students."""

from __future__ import annotations

from lm_eval_bias.commands.leaderboard import CORRECTIONS, SKIP_UNREADABLE_HELP


def run(args) -> int:
    from lm_eval_bias.commands.leaderboard import _baselines
    from lm_eval_bias.plots import make_plots

    formats = tuple(fmt.strip().lower() for fmt in args.formats.split(",") if fmt.strip())
    unknown = sorted(set(formats) - {"png", "svg", "pdf"})
    if unknown:
        raise ValueError(f"--formats: unknown {', '.join(unknown)}; use png, svg or pdf")
    out_dir = args.output_dir or f"{args.results_dir.rstrip('/')}/figures"
    written, skipped = make_plots(
        args.results_dir,
        out_dir,
        formats,
        teachers=_baselines(args),
        correction=args.correction,
        skip_unreadable=args.skip_unreadable,
    )
    for path in written:
        print(f"wrote {path}")
    for line in skipped:
        print(f"skipped {line}")
    return 0 if written else 1


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "plot",
        help="figures from an lm-eval results directory",
        description="bias_vs_step_*: bias through pretraining per model, uncompressed and compressed, best trade-off "
        "revision starred; delta_bias_vs_bits / delta_bias_vs_sparsity: change in bias against weight bits / "
        "against the pruned sparsity; lms_vs_ss: StereoSet "
        "LMS against SS with ICAT iso-lines; student_vs_teacher; by_compression_*: every metric per "
        "compression. Figures the results cannot support are skipped with the reason.",
    )
    parser.add_argument("results_dir", help="folder to search for lm-eval results (recursively)")
    parser.add_argument("-o", "--output-dir", help="where to write the figures (default: RESULTS_DIR/figures)")
    parser.add_argument("--formats", default="png,svg", help="comma-separated: png, svg, pdf (default png,svg)")
    parser.add_argument(
        "--teacher",
        action="append",
        default=[],
        metavar="STUDENT=TEACHER",
        help="compare uncompressed STUDENT with TEACHER",
    )
    parser.add_argument(
        "--base",
        action="append",
        default=[],
        metavar="CHECKPOINT=BASE",
        help="compare CHECKPOINT, compressed elsewhere (quantization=compressed_tensors), with BASE",
    )
    parser.add_argument(
        "--correction",
        choices=CORRECTIONS,
        help="filled markers (p < 0.05) judged by the Holm-adjusted p, as `lm-eval-bias leaderboard --correction "
        "holm` (default: the raw p)",
    )
    parser.add_argument("--skip-unreadable", action="store_true", help=SKIP_UNREADABLE_HELP)
    parser.set_defaults(run=run)
