"""Holm's step-down correction of the leaderboard's paired p-values: by hand on a small family, then on the
hand-made results fixtures (the family is every compared cell × bias metric shown)."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest

from fixtures.results import write_fixture, write_significance_study
from lm_eval_bias.cli import main
from lm_eval_bias.leaderboard import build_leaderboard, load_runs, render
from lm_eval_bias.leaderboard.paired import holm

COLUMN = "crows_pairs_bias/stereotype_score"


def test_holm_by_hand():
    # p = (0.01, 0.04, 0.03, 0.005, 0.5), m = 5. Sorted: 0.005, 0.01, 0.03, 0.04, 0.5, times m, m-1, ..., 1:
    # 0.025, 0.04, 0.09, 0.08, 0.5; running maximum: 0.025, 0.04, 0.09, 0.09, 0.5; back in the order given:
    p = [0.01, 0.04, 0.03, 0.005, 0.5]
    assert holm(p) == pytest.approx([0.04, 0.09, 0.09, 0.025, 0.5], rel=1e-12)
    # Holm's procedure at 0.05: 0.005 <= 0.05/5 reject, 0.01 <= 0.05/4 reject, 0.03 > 0.05/3 stop
    assert list(holm(p) < 0.05) == [True, False, False, True, False]
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.02, 0.02]) == pytest.approx([0.04, 0.04])  # ties: both get the larger multiplier's value
    assert holm([0.03]) == pytest.approx([0.03])  # a family of one is not adjusted
    assert holm([]).size == 0


def test_holm_on_a_hand_made_family_decides_significance(tmp_path):
    # raw p: 8 flips 2/256 = 0.0078125, 6 flips 2/64 = 0.03125 (twice); m = 3.
    # Holm: 3 x 0.0078125 = 0.0234375; 2 x 0.03125 = 0.0625; max(0.0625, 1 x 0.03125) = 0.0625.
    runs = load_runs(write_significance_study(tmp_path))
    board = build_leaderboard(runs, correction="holm")
    wide = board.wide().set_index("compression")
    raw = wide[f"{COLUMN} p_value"]
    adjusted = wide[f"{COLUMN} p_holm"]
    assert raw["rtn(bits=8,group_size=128)"] == pytest.approx(2 / 256)
    assert raw["rtn(bits=4,group_size=128)"] == raw["rtn(bits=3,group_size=128)"] == pytest.approx(2 / 64)
    assert adjusted["rtn(bits=8,group_size=128)"] == pytest.approx(0.0234375)
    assert adjusted["rtn(bits=4,group_size=128)"] == adjusted["rtn(bits=3,group_size=128)"] == pytest.approx(0.0625)
    assert math.isnan(adjusted["none"])  # the baseline is tested against nothing

    markdown = render(board.wide(), board.columns, "markdown")
    assert "| −66.7 (p=0.008, Holm p=0.023, 8 flipped) |" in markdown  # next to the raw p
    assert "| −50.0 (p=0.031, Holm p=0.062, 6 flipped) |" in markdown
    assert (
        f"m · main · rtn(bits=8,group_size=128): bias moved significantly ({COLUMN} −66.7, p=0.0078, Holm p=0.023)"
        in markdown
    )
    assert f"rtn(bits=4,group_size=128): bias did not move significantly (Holm p ≥ 0.05: {COLUMN})" in markdown
    # without the correction the 6-flip cells read as significant
    plain = build_leaderboard(runs)
    assert "p_holm" not in plain.long and not any("p_holm" in c for c in plain.wide().columns)
    assert f"rtn(bits=4,group_size=128): bias moved significantly ({COLUMN} −50, p=0.031)" in render(
        plain.wide(), plain.columns, "markdown"
    )

    page = render(board.wide(), board.columns, "html")
    bold = [line for line in page.splitlines() if 'class="sig' in line]
    assert len(bold) == 1 and "rtn(bits=8" in bold[0]  # only the cell Holm keeps is bold
    assert "Holm p: the paired p-values of every bias metric" in page


def test_cli_correction_holm_and_the_family_is_what_is_shown(tmp_path, capsys):
    folder = write_significance_study(tmp_path)
    assert main(["leaderboard", str(folder), "--format", "csv", "--correction", "holm"]) == 0
    rows = {r["compression"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert float(rows["rtn(bits=4,group_size=128)"][f"{COLUMN} p_holm"]) == pytest.approx(0.0625)
    assert f"{COLUMN} p_value" in rows["none"] and rows["none"][f"{COLUMN} p_holm"] == ""
    # filtered to one compressed cell, the family is that cell's test alone: no adjustment
    assert (
        main(["leaderboard", str(folder), "--format", "csv", "--correction", "holm", "--compression", "rtn(bits=4*"])
        == 0
    )
    (row,) = csv.DictReader(io.StringIO(capsys.readouterr().out))
    assert float(row[f"{COLUMN} p_holm"]) == pytest.approx(2 / 64)
    with pytest.raises(SystemExit):
        main(["leaderboard", str(folder), "--correction", "bonferroni"])
    with pytest.raises(ValueError, match="unknown correction"):
        build_leaderboard(load_runs(folder), correction="bonferroni")


def test_holm_over_the_hand_made_fixture(tmp_path):
    """The family: each compared row (compressed cells, the student against its teacher) × each bias metric
    with a paired test (stereotype_score, ss); not LMS, ICAT (untested) or ARC (capability)."""
    runs = load_runs(write_fixture(tmp_path))
    long = build_leaderboard(runs, correction="holm").long
    family = long[long["p_holm"].notna()]
    assert set(family["metric"]) == {"stereotype_score", "ss"}
    assert len(family) == 2 * 10  # 6 dynamic_int8 + 3 rtn cells + 1 student
    assert (family["compression"] != "none").sum() == 2 * 9 and set(family["model"]) >= {"distilpythia-70m"}
    # an independent step-down: the i-th smallest p times (m - i + 1), running maximum, at most 1
    p = family["p_value"].to_numpy()
    order = np.argsort(p, kind="stable")
    expected, running = np.empty(len(p)), 0.0
    for rank, index in enumerate(order):
        running = max(running, (len(p) - rank) * p[index])
        expected[index] = min(1.0, running)
    assert family["p_holm"].to_numpy() == pytest.approx(expected)
    # the hand-made pair (pythia-70m step15000, p = 14/64) with the family filtered to its row: it and ss (p = 1)
    shown = build_leaderboard(
        runs, correction="holm", filters={"model": ["pythia-70m"], "revision": ["step15000"]}
    ).wide()
    int8 = shown.set_index("compression").loc["dynamic_int8"]
    assert int8[f"{COLUMN} p_value"] == pytest.approx(14 / 64)
    assert int8[f"{COLUMN} p_holm"] == pytest.approx(2 * 14 / 64)  # the smaller of two: times 2
    assert int8["stereoset_bias/ss p_holm"] == pytest.approx(1.0)
    assert "stereoset_bias/lms p_holm" not in shown and "arc_easy/acc_norm p_holm" not in shown
