"""Figures from a results directory: written, non-empty, plotting the numbers the results files hold,
and skipped with a reason when unsupported."""

from __future__ import annotations

import pandas as pd

from fixtures.results import write_fixture
from lm_eval_bias.cli import main
from lm_eval_bias.leaderboard import build_leaderboard, load_runs
from lm_eval_bias.plots import best_tradeoff, figures, make_plots
from lm_eval_bias.plots.style import save


def test_best_tradeoff_prefers_icat_then_bounded_quality():
    steps = pd.DataFrame(
        {
            "revision": ["s1", "s2", "s3"],
            "ss": [50.5, 58.0, 62.0],
            "lms": [60.0, 88.0, 90.0],
            "icat": [59.4, 73.9, 68.4],
        }
    )
    assert best_tradeoff(steps, "ss").revision == "s2"  # highest ICAT
    no_icat = steps.drop(columns="icat")
    # closest to 50 among revisions with lms >= 95% of 90 (85.5): s2 (58.0) beats s3 (62.0); s1 is excluded
    assert best_tradeoff(no_icat, "ss").revision == "s2"
    assert best_tradeoff(no_icat, "ss", max_quality_loss=0.5).revision == "s1"
    assert best_tradeoff(no_icat.drop(columns="lms"), "ss").revision == "s1"


def test_every_figure_is_written_and_non_empty(tmp_path):
    results = write_fixture(tmp_path / "results")
    written, skipped = make_plots(results, tmp_path / "figures", formats=("png",))
    names = {path.name for path in written}
    for stem in (
        "bias_vs_step_crows_pairs_bias_stereotype_score",
        "bias_vs_step_stereoset_bias_ss",
        "delta_bias_vs_bits",
        "lms_vs_ss",
        "delta_agreement",
        "student_vs_teacher",
        "by_compression_pythia-70m",
    ):
        assert f"{stem}.png" in names
    for path in written:
        assert path.stat().st_size > 5_000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    assert any("pythia-410m" in line and "no bias metric" in line for line in skipped)  # a stock task only
    board = build_leaderboard(load_runs(results / "study"), metrics=["ss", "lms"]).long
    svg = save(figures.lms_vs_ss(board), tmp_path / "figures" / "one", ("svg",))[0]
    assert svg.read_text().lstrip().startswith("<?xml") and svg.stat().st_size > 5_000


def test_cli_says_what_the_results_cannot_show(tmp_path, capsys):
    results = write_fixture(tmp_path / "results")
    # one stock task at one revision: nothing to plot, and each figure says why
    assert main(["plot", str(results / "plain"), "-o", str(tmp_path / "figs"), "--formats", "png"]) == 1
    out = capsys.readouterr().out
    assert "skipped delta_bias_vs_bits" in out and "skipped lms_vs_ss" in out and "wrote" not in out
    assert main(["plot", str(results), "--formats", "gif"]) == 2


def _runs(folder):
    """(cell labels, lm-eval results) of every run under a study folder, read straight from the files."""
    import json

    for cell in sorted(folder.glob("*/cell.json")):
        labels = json.loads(cell.read_text())["labels"]
        for path in sorted(cell.parent.glob("*/results_*.json")):
            yield labels, json.loads(path.read_text())["results"]


def test_figures_plot_the_numbers_of_the_results_files(tmp_path):
    import re

    results = write_fixture(tmp_path / "results")
    long = build_leaderboard(load_runs(results / "study"), metrics=["stereotype_score", "ss", "lms"]).long

    # the leaderboard shows each benchmark's top-level group
    expected = sorted(
        (round(run["stereoset_bias"]["ss,none"], 6), round(run["stereoset_bias"]["lms,none"], 6))
        for _, run in _runs(results / "study")
        if "stereoset_bias" in run
    )
    ax = figures.lms_vs_ss(long).axes[0]
    plotted = sorted((round(float(x), 6), round(float(y), 6)) for c in ax.collections for x, y in c.get_offsets())
    assert plotted == expected and len(expected) > 3

    expected = sorted(
        (
            labels["model"],
            round(int(step.group(1)) / 1000, 6),
            round(run["crows_pairs_bias"]["stereotype_score,none"], 6),
        )
        for labels, run in _runs(results / "study")
        if "crows_pairs_bias" in run and (step := re.fullmatch(r"step(\d+)", labels["revision"]))
    )
    figure = figures.bias_vs_step(long, "crows_pairs_bias", "stereotype_score")
    plotted = sorted(
        (ax.get_title(), round(float(x), 6), round(float(y), 6))
        for ax in figure.axes
        for line in ax.lines
        if line.get_marker() == "."
        for x, y in zip(line.get_xdata(), line.get_ydata())
    )
    assert plotted == expected and len({model for model, _, _ in expected}) > 1


def test_significance_marks_follow_the_holm_adjusted_p(tmp_path):
    """Raw p: 0.008, 0.031, 0.031 (filled, filled, filled); Holm: 0.023, 0.062, 0.062 (filled, hollow, hollow)."""
    from fixtures.results import write_significance_study
    from lm_eval_bias.plots.style import significant

    runs = load_runs(write_significance_study(tmp_path))
    for correction, filled in ((None, 3), ("holm", 1)):
        long = build_leaderboard(runs, correction=correction).long
        compressed = long[long["compression"] != "none"]
        assert int(significant(compressed).sum()) == filled
        ax = figures.by_compression(long, "m").axes[0]
        markers = [line for line in ax.lines if line.get_marker() == "o"]
        hollow = sum(line.get_markerfacecolor() in ("white", (1.0, 1.0, 1.0, 1.0)) for line in markers)
        assert (len(markers), hollow) == (4, 3 - filled)  # the baseline is always filled


def test_agreement_labels_name_a_student_by_its_model():
    from lm_eval_bias.plots.agreement import cell_label

    assert cell_label("results/distill/gemma-3-270m-student/", "none") == "gemma-3-270m-student"
    assert cell_label("google/gemma-3-270m", "gptq(bits=4,calibration=a.txt,group_size=128)") == "gptq(bits=4)"
