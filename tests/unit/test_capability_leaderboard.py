"""The leaderboard judges bias changes against capability changes (hand-made study: none, rtn 8-bit, rtn 2-bit)."""

from __future__ import annotations

import csv
import io
import math
import re

import numpy as np
import pandas as pd
import pytest

from fixtures.capability_results import EXPECTED, write_study
from lm_eval_bias.cli import main
from lm_eval_bias.leaderboard import build_leaderboard, load_runs
from lm_eval_bias.leaderboard.capability import Thresholds, capability_changes, capability_table

BITS8, BITS2 = "rtn(bits=8,group_size=128)", "rtn(bits=2,group_size=128)"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return write_study(tmp_path_factory.mktemp("study"))


def output(capsys, *args) -> str:
    assert main(["leaderboard", *map(str, args)]) == 0
    return capsys.readouterr().out


def table_row(text: str, compression: str) -> str:
    """The table row (terminal or Markdown) of one compression, not its closing sentence."""
    pattern = rf"^\|? ?pythia-70m( \| |\s+)main( \| |\s+){re.escape(compression)}( \||\s)"
    rows = [line for line in text.splitlines() if re.match(pattern, line)]
    assert len(rows) == 1, rows
    return rows[0]


def test_terminal_marks_the_2bit_cell_degraded_and_not_the_8bit_one(study, capsys):
    text = output(capsys, study)
    assert "degraded" in table_row(text, BITS2) and "degraded" not in table_row(text, BITS8)
    assert "[degraded]" in table_row(text, BITS2).split("×4.00")[0]  # its bias Δ is shown, flagged
    assert "−40.0 (p<0.001, 12 flipped) [degraded]" in table_row(text, BITS2)
    last = text.strip().splitlines()[-2:]  # one closing sentence per compressed cell
    assert last[0].startswith(f"pythia-70m · main · {BITS8}: bias did not move significantly")
    assert last[0].endswith("capability held.")
    assert last[1].startswith(f"pythia-70m · main · {BITS2}: bias moved significantly")
    assert "but capability did not hold (crows_pairs_bias/perplexity ×4.00 (20.0 → 80.0) > ×1.5;" in last[1]
    assert "stereoset_bias/lms −20.0 (90.0 → 70.0) < −5" in last[1] and last[1].endswith("not evidence.")


def test_markdown_marks_the_2bit_cell_degraded(study, tmp_path, capsys):
    output(capsys, study, "-o", tmp_path / "board.md")
    text = (tmp_path / "board.md").read_text()
    assert f"| pythia-70m | main | {BITS2} | degraded |" in text
    assert f"| pythia-70m | main | {BITS8} | held |" in text
    assert "degraded" not in table_row(text, BITS8)
    assert text.strip().splitlines()[-1].startswith(f"- pythia-70m · main · {BITS2}: bias moved significantly")


def test_csv_carries_the_word_and_the_numbers(study, capsys):
    rows = {r["compression"]: r for r in csv.DictReader(io.StringIO(output(capsys, study, "--format", "csv")))}
    assert rows["none"]["capability"] == ""
    for compression in (BITS8, BITS2):
        row, expected = rows[compression], EXPECTED[compression]
        assert row["capability"] == expected["capability"]
        assert float(row["crows_pairs_bias/perplexity ratio"]) == pytest.approx(expected["ratio"])
        assert float(row["stereoset_bias/lms change"]) == pytest.approx(expected["lms_change"])
        assert float(row["crows_pairs_bias/stereotype_score"]) == pytest.approx(expected["stereotype_score"], abs=1e-4)
        assert float(row["crows_pairs_bias/stereotype_score p_value"]) == pytest.approx(expected["p_value"], rel=1e-4)
        for tercile, (flips, n) in expected["flips"].items():
            assert (int(row[f"crows_pairs_bias flips_{tercile}"]), int(row[f"crows_pairs_bias n_{tercile}"])) == (
                flips,
                n,
            )
    assert float(rows[BITS2]["lambada_openai/acc change"]) == pytest.approx(0.05 - 0.40)  # shown, not judged


def test_html_marks_the_2bit_row(study, tmp_path, capsys):
    output(capsys, study, "-o", tmp_path / "board.html")
    page = (tmp_path / "board.html").read_text()
    rows = {
        compression: line for line in page.splitlines() for compression in (BITS8, BITS2) if f">{compression}<" in line
    }
    assert rows[BITS2].startswith('<tr class="degraded">') and '<span class="badge">degraded</span>' in rows[BITS2]
    assert "degraded" not in rows[BITS8]


def test_thresholds_are_options(study, capsys):
    lenient = {
        r["compression"]: r["capability"]
        for r in csv.DictReader(
            io.StringIO(
                output(capsys, study, "--format", "csv", "--max-perplexity-ratio", "4.5", "--max-lms-drop", "25")
            )
        )
    }
    assert lenient == {"none": "", BITS8: "held", BITS2: "held"}
    strict = {
        r["compression"]: r["capability"]
        for r in csv.DictReader(io.StringIO(output(capsys, study, "--format", "csv", "--max-perplexity-ratio", "1.04")))
    }
    assert strict == {"none": "", BITS8: "degraded", BITS2: "degraded"}  # 21 / 20 = 1.05 > 1.04
    lms_only = {
        r["compression"]: r["capability"]
        for r in csv.DictReader(
            io.StringIO(
                output(capsys, study, "--format", "csv", "--max-perplexity-ratio", "10", "--max-lms-drop", "19.9")
            )
        )
    }
    assert lms_only[BITS2] == "degraded"  # LMS 90 -> 70 is a drop of 20 > 19.9


def test_bad_thresholds_are_named():
    with pytest.raises(ValueError, match="max_perplexity_ratio must be greater than 1"):
        Thresholds(max_perplexity_ratio=0.8)
    with pytest.raises(ValueError, match="max_lms_drop must be 0 or more"):
        Thresholds(max_lms_drop=-1)


def _long(rows):
    return pd.DataFrame(
        [
            {"model": "m", "revision": "main", "compression": c, "task": t, "metric": m, "value": v}
            for c, t, m, v in rows
        ]
    )


def test_stock_task_main_metrics_ratio_for_perplexities_difference_otherwise():
    frame = _long(
        [
            ("none", "wikitext", "word_perplexity", 30.0),
            ("q", "wikitext", "word_perplexity", 48.0),
            ("none", "wikitext", "bits_per_byte", 1.0),
            ("q", "wikitext", "bits_per_byte", 3.0),
            ("none", "hellaswag", "acc", 0.30),
            ("q", "hellaswag", "acc", 0.20),
            ("none", "hellaswag", "acc_norm", 0.35),
            ("q", "hellaswag", "acc_norm", 0.25),
        ]
    )
    bases = {("m", "main", "q"): ("m", "main", "none"), ("m", "main", "none"): None}
    changes = capability_changes(frame, bases).set_index("measure")
    assert set(changes.index) == {"wikitext/word_perplexity", "hellaswag/acc_norm"}  # one main metric per task
    assert changes.loc["wikitext/word_perplexity", "change"] == pytest.approx(1.6)
    assert bool(changes.loc["wikitext/word_perplexity", "degrades"])  # 1.6 > 1.5
    assert changes.loc["hellaswag/acc_norm", "change"] == pytest.approx(-0.10)
    assert not bool(changes.loc["hellaswag/acc_norm", "degrades"])
    cell = capability_table(capability_changes(frame, bases)).iloc[0]
    assert cell["capability"] == "degraded" and cell["capability_detail"].startswith("wikitext/word_perplexity ×1.60")


def test_cells_without_a_baseline_measure_get_no_verdict():
    frame = _long(
        [("none", "crows_pairs_bias", "stereotype_score", 60.0), ("q", "crows_pairs_bias", "stereotype_score", 55.0)]
    )
    changes = capability_changes(frame, {("m", "main", "q"): ("m", "main", "none")})
    assert changes.empty and list(capability_table(changes).columns)[-2:] == ["capability", "capability_detail"]


def test_plots_draw_degraded_cells_with_their_own_marker(study):
    from matplotlib.markers import MarkerStyle

    from lm_eval_bias.plots import figures

    long = build_leaderboard(load_runs(study), metrics=["stereotype_score", "ss", "lms"]).long
    style = MarkerStyle("X")
    x_marker = style.get_path().transformed(style.get_transform()).vertices
    for figure in (figures.delta_vs_bits(long), figures.lms_vs_ss(long)):
        marked = []
        for ax in figure.axes:
            for collection in ax.collections:
                paths = collection.get_paths()
                if (
                    len(paths) == 1
                    and paths[0].vertices.shape == x_marker.shape
                    and np.allclose(paths[0].vertices, x_marker)
                ):
                    marked += [tuple(np.round(p, 3)) for p in collection.get_offsets()]
        xs = {round(float(x), 1) for x, _ in marked}
        ys = {float(y) for _, y in marked}
        if figure.axes[0].get_xscale() == "log":  # delta_vs_bits: the 2-bit cell, at Δ −40 (CrowS) and −8 (SS)
            assert xs == {2.0} and ys == {-40.0, -8.0}
        else:  # lms_vs_ss: the 2-bit cell at (SS 52, LMS 70) only
            assert marked == [(52.0, 70.0)]
    assert not math.isnan(long.loc[long["compression"] == BITS2, "bits"].iloc[0])


def test_a_broken_models_perplexity_ratio_is_written_in_powers_of_ten():
    from lm_eval_bias.leaderboard.capability import describe_change

    assert describe_change("ratio", 99.4e10 / 99.4 * 4.3, 99.4, 4.3e12) == "×4.3e+10 (99.4 → 4.3e+12)"
    assert describe_change("ratio", 40.45, 99.4, 4022.6) == "×40.45 (99.4 → 4022.6)"
