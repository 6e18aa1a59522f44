"""`lm-eval-bias leaderboard DIR`: one row per (model, revision, compression), Δ and paired tests."""

from __future__ import annotations

import sys
from pathlib import Path

FORMATS = ("terminal", "markdown", "csv", "html")
CORRECTIONS = ("holm",)  # leaderboard.paired.CORRECTIONS (not imported here: the parser stays light)
SKIP_UNREADABLE_HELP = (
    "leave out the runs whose results, samples or cell.json files do not read back whole (cut short, not JSON), "
    "and list them; default: stop, naming each such file and line"
)
SUFFIXES = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".csv": "csv",
    ".html": "html",
    ".htm": "html",
    ".txt": "terminal",
}


def output_format(output: str | None, fmt: str | None) -> str:
    """The format to write: ``--format``, else the one ``--output``'s suffix names, else terminal.

    An ``--output`` whose suffix names no format (``board.xlsx``) is refused unless ``--format`` is given:
    writing the terminal table into it would pass for a file of that kind.
    """
    from lm_eval_bias.errors import BiasOptionError

    if fmt or not output:
        return fmt or "terminal"
    suffix = Path(output).suffix.lower()
    if suffix not in SUFFIXES:
        raise BiasOptionError(
            f"-o/--output {output}: unknown extension {suffix or '(none)'!r}; use one of "
            f"{', '.join(SUFFIXES)}, or name the format with --format ({', '.join(FORMATS)})"
        )
    return SUFFIXES[suffix]


def _teachers(pairs: list[str], option: str = "--teacher", names: str = "STUDENT=TEACHER") -> dict[str, str]:
    teachers = {}
    for pair in pairs:
        student, sep, teacher = pair.partition("=")
        if not sep or not student or not teacher:
            raise ValueError(f"{option} expects {names} (model names as in the table), got {pair!r}")
        teachers[student] = teacher
    return teachers


def _baselines(args) -> dict[str, str]:
    """Model -> the model it is compared with: --teacher (students) and --base (checkpoints compressed elsewhere)."""
    return {**_teachers(args.teacher), **_teachers(getattr(args, "base", []), "--base", "CHECKPOINT=BASE")}


def run(args) -> int:
    from lm_eval_bias.leaderboard import UnreadableResultsError, build_leaderboard, render, scan_runs, sort_wide
    from lm_eval_bias.leaderboard.capability import Thresholds

    fmt = output_format(args.output, args.format)  # refused before anything is read
    thresholds = Thresholds(
        max_perplexity_ratio=args.max_perplexity_ratio,
        max_lms_drop=args.max_lms_drop,
        max_accuracy_drop=args.max_accuracy_drop,
    )

    runs, unreadable = scan_runs(args.results_dir)
    if unreadable and not args.skip_unreadable:
        raise UnreadableResultsError(args.results_dir, unreadable)
    for error in unreadable:
        print(f"lm-eval-bias: skipped unreadable {error}", file=sys.stderr)
    if not runs:
        print(f"lm-eval-bias: no lm-eval results files under {args.results_dir}", file=sys.stderr)
        return 2
    board = build_leaderboard(
        runs,
        metrics=args.metrics.split(",") if args.metrics else None,
        all_metrics=args.all_metrics,
        subtasks=args.subtasks,
        teachers=_baselines(args),
        filters={"model": args.model, "revision": args.revision, "compression": args.compression, "task": args.task},
        thresholds=thresholds,
        correction=args.correction,
    )
    wide = sort_wide(board.wide(), board.columns, args.sort, args.descending)
    figures = args.figures or str(Path(args.results_dir) / "figures")  # where `lm-eval-bias plot` writes by default
    text = render(
        wide, board.columns, fmt, title=args.title or f"Leaderboard: {Path(args.results_dir).name}", figures=figures
    )
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output} ({len(wide)} rows)")
    else:
        sys.stdout.write(text)
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "leaderboard",
        help="compare runs in an lm-eval results directory",
        description="Read every lm-eval results file under DIR (a study's output_dir, or any lm_eval --output_path). "
        "One row per (model, revision, compression); per metric its value with a 95%% interval, and its "
        "difference from the baseline (same model uncompressed, or a student's teacher) with a paired "
        "test on the logged samples.",
    )
    parser.add_argument("results_dir", help="folder to search for results_*.json (recursively)")
    parser.add_argument("--format", choices=FORMATS, help="default: from --output's suffix, else terminal")
    parser.add_argument("-o", "--output", help="write to this file instead of standard output")
    parser.add_argument(
        "--metrics",
        help="comma-separated metric names or TASK/METRIC globs "
        "(default: the bias metrics present, else one capability metric per task)",
    )
    parser.add_argument("--all-metrics", action="store_true", help="every metric of every task")
    parser.add_argument("--subtasks", action="store_true", help="also list the subtasks of groups")
    parser.add_argument("--model", action="append", default=[], help="keep models matching this glob (repeatable)")
    parser.add_argument("--revision", action="append", default=[], help="keep revisions matching this glob")
    parser.add_argument("--compression", action="append", default=[], help="keep compressions matching this glob")
    parser.add_argument("--task", action="append", default=[], help="keep tasks matching this glob")
    parser.add_argument(
        "--teacher",
        action="append",
        default=[],
        metavar="STUDENT=TEACHER",
        help="compare uncompressed STUDENT with TEACHER (a study's config records this itself)",
    )
    parser.add_argument(
        "--base",
        action="append",
        default=[],
        metavar="CHECKPOINT=BASE",
        help="compare CHECKPOINT, compressed elsewhere (quantization=compressed_tensors, a GPTQ "
        "checkpoint), with BASE uncompressed",
    )
    parser.add_argument(
        "--sort",
        help="model, revision, compression, step, bits, size, a metric (METRIC or TASK/METRIC), "
        "delta:METRIC or dist50:METRIC (distance from 50)",
    )
    parser.add_argument("--descending", action="store_true", help="sort in descending order")
    parser.add_argument(
        "--correction",
        choices=CORRECTIONS,
        help="adjust the paired p-values for multiple comparisons: holm (Holm's step-down) over the family of "
        "every compared cell x bias metric shown; the adjusted p is shown next to the raw one (CSV: "
        "'METRIC p_holm') and decides significance (bold, verdicts). Default: raw p-values only",
    )
    parser.add_argument("--title", help="title of the HTML page")
    parser.add_argument("--skip-unreadable", action="store_true", help=SKIP_UNREADABLE_HELP)
    parser.add_argument(
        "--figures",
        help="folder of PNG figures the HTML page embeds (default: RESULTS_DIR/figures, "
        "where `lm-eval-bias plot` writes them; skipped when absent)",
    )
    parser.add_argument(
        "--max-perplexity-ratio",
        type=float,
        default=1.5,
        metavar="R",
        help="a cell is degraded when a perplexity (crows_pairs_bias, or a stock task's) grew by more "
        "than this factor against its baseline (default 1.5)",
    )
    parser.add_argument(
        "--max-lms-drop",
        type=float,
        default=5.0,
        metavar="POINTS",
        help="a cell is degraded when StereoSet LMS fell by more than this many points (default 5)",
    )
    parser.add_argument(
        "--max-accuracy-drop",
        type=float,
        default=0.05,
        metavar="FRACTION",
        help="a cell is degraded when BBQ's accuracy on disambiguated questions (bbq_bias acc_disambig, "
        "lm-eval's bbq accuracy_disamb) fell by more than this (default 0.05: 5 points)",
    )
    parser.set_defaults(run=run)
