"""`lm-eval-bias check-data [DIR]`: validate the benchmark files a run would read.

Each benchmark is read exactly as its task reads it; the first problem in each is printed
and the exit status is 1 if any benchmark failed.
"""

from __future__ import annotations

import sys

BENCHMARKS = ("crows_pairs", "stereoset", "stereoset_test", "seat", "bbq", "holistic_bias")
# what the default protocol reads; stereoset_test (read under --metadata '{"protocol": "paper"}') on request
DEFAULT_BENCHMARKS = ("crows_pairs", "stereoset", "seat", "bbq", "holistic_bias")


def check_crows_pairs(data_dir) -> list[str]:
    from lm_eval_bias.data.crows_pairs import load_crows_pairs
    from lm_eval_bias.data.sources import benchmark_file

    path = benchmark_file("crows_pairs", data_dir=data_dir)
    frame = load_crows_pairs(path)
    counts = frame["bias_type"].value_counts()
    return [
        f"{path}: {len(frame)} CrowS-Pairs pairs",
        *(f"  {kind:<20} {count}" for kind, count in counts.items()),
        *(f"  warning: {message}" for message in frame.attrs.get("warnings", [])),
    ]


def check_stereoset(data_dir, stereoset_split: str = "dev") -> list[str]:
    from lm_eval_bias.data.stereoset import load_stereoset, stereoset_file

    path = stereoset_file(stereoset_split, data_dir=data_dir)
    frame = load_stereoset(path)
    counts = frame.groupby(["split", "bias_type"]).size()
    return [
        f"{path}: {len(frame)} StereoSet clusters",
        *(f"  {split:<15} {kind:<12} {count}" for (split, kind), count in counts.items()),
    ]


def check_seat(data_dir) -> list[str]:
    from lm_eval_bias.data.seat import TESTS, load_seat_test
    from lm_eval_bias.data.sources import benchmark_file

    lines = []
    for bias_type, tests in TESTS.items():
        for name, file_name in tests.items():
            path = benchmark_file("seat", data_dir=data_dir, test=file_name)
            sets = load_seat_test(path)
            sizes = " ".join(f"{role}={len(sets[role]['examples'])}" for role in sets)
            lines.append(f"  {bias_type:<9} {name:<32} {sizes}")
    return [f"SEAT: {len(lines)} tests", *lines]


def check_bbq(data_dir) -> list[str]:
    """Every BBQ category file present (each one read as its subtask reads it); absent categories are
    listed, as their subtasks cannot run, and fail the check only when none is present."""
    from lm_eval_bias.data.bbq import CATEGORIES, available_categories, bbq_file, load_bbq, subtask_name

    present = available_categories(data_dir)
    if not present:
        bbq_file(CATEGORIES[0], data_dir)  # raises, naming the file and the expected layout
    lines, total = [], 0
    for category in present:
        path = bbq_file(category, data_dir)
        docs = load_bbq(path)
        total += len(docs)
        no_target = sum(doc["target_loc"] < 0 for doc in docs)
        lines.append(f"  {subtask_name(category):<32} {len(docs):>5} items ({no_target} without a target)  {path}")
    missing = [c for c in CATEGORIES if c not in present]
    summary = f"BBQ: {len(present)} of {len(CATEGORIES)} categories, {total} items"
    notes = [f"  missing (its subtask cannot run): {subtask_name(c)}" for c in missing]
    return [summary, *lines, *notes]


def check_holistic_bias(data_dir) -> list[str]:
    """The four HolisticBias lists, and the Likelihood Bias sentences of each set per axis (subtask)."""
    from collections import Counter

    from lm_eval_bias.data.holistic_bias import AXES, SETS, holistic_bias_file, load_lists, sentences, subtask_name

    lists = load_lists(data_dir)
    counts = {name: Counter(row["axis"] for row in sentences(lists, name)) for name in SETS}
    descriptors = sum(len(entries) for buckets in lists["descriptors"].values() for entries in buckets.values())
    header = "  ".join(f"{name:>8}" for name in SETS)
    return [
        f"HolisticBias: {descriptors} descriptors, {sum(map(len, lists['standalone_noun_phrases'].values()))} "
        f"standalone noun phrases, {sum(map(len, lists['nouns'].values()))} nouns, "
        f"{len(lists['sentence_templates'])} templates  {holistic_bias_file('descriptors', data_dir).parent}",
        f"  {'sentences per set':<40} {header}",
        *(f"  {subtask_name(axis):<40} " + "  ".join(f"{counts[n][axis]:>8}" for n in SETS) for axis in AXES),
        f"  {'holistic_bias':<40} " + "  ".join(f"{sum(counts[n].values()):>8}" for n in SETS),
    ]


def check_stereoset_test(data_dir) -> list[str]:
    """The test split (bias-bench's test.json), which the paper protocol reads."""
    return check_stereoset(data_dir, stereoset_split="test")


CHECKS = {
    "crows_pairs": check_crows_pairs,
    "stereoset": check_stereoset,
    "stereoset_test": check_stereoset_test,
    "seat": check_seat,
    "bbq": check_bbq,
    "holistic_bias": check_holistic_bias,
}


def run(args) -> int:
    failed = []
    for benchmark in args.benchmarks:
        try:
            lines = CHECKS[benchmark](args.data_dir)
        except (ValueError, FileNotFoundError) as error:
            failed.append(benchmark)
            print(f"{benchmark}: {error}", file=sys.stderr)
            continue
        print("\n".join(lines))
    if failed:
        print(
            f"lm-eval-bias check-data: {len(failed)} of {len(args.benchmarks)} benchmark(s) failed: "
            f"{', '.join(failed)}",
            file=sys.stderr,
        )
        return 1
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("check-data", help="validate benchmark files")
    parser.add_argument(
        "data_dir", nargs="?", help="folder laid out like ../shared/data (default: $LM_EVAL_BIAS_DATA_DIR)"
    )
    parser.add_argument(
        "--benchmarks",
        nargs="+",
        choices=BENCHMARKS,
        default=list(DEFAULT_BENCHMARKS),
        help="which benchmarks to check (default: the files the default protocol reads, "
        f"{' '.join(DEFAULT_BENCHMARKS)}; stereoset_test is StereoSet's test.json, "
        "which the paper protocol reads)",
    )
    parser.set_defaults(run=run)
