"""The leaderboard: reading results directories, paired tests, baselines, and the four output formats."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from fixtures.results import HAND_EXPECTED, _arc, _write, write_fixture
from lm_eval_bias.cli import main
from lm_eval_bias.leaderboard import (
    build_leaderboard,
    load_runs,
    mcnemar_exact,
    paired_test,
    permutation_p_value,
    render,
)


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory) -> Path:
    return write_fixture(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def board(results_dir):
    return build_leaderboard(load_runs(results_dir))


def row(wide, model, revision, compression):
    match = wide[(wide["model"] == model) & (wide["revision"] == revision) & (wide["compression"] == compression)]
    assert len(match) == 1, (model, revision, compression)
    return match.iloc[0]


# ------------------------------------------------------------------ paired tests


def test_mcnemar_matches_a_hand_computed_contingency_table():
    #                 int8 prefers   int8 does not
    # none prefers         30             12   (c = 12 flipped away from the stereotype)
    # none does not         3             55   (b = 3 flipped towards it)
    # two-sided exact: 2 * P(X <= 3), X ~ Binomial(15, 1/2) = 2 * (1 + 15 + 105 + 455) / 2^15
    expected = 2 * (1 + 15 + 105 + 455) / 2**15
    assert mcnemar_exact(3, 12) == pytest.approx(expected, rel=1e-12)
    assert mcnemar_exact(12, 3) == pytest.approx(expected, rel=1e-12)
    assert mcnemar_exact(0, 0) == 1.0
    items = [(1, 1)] * 30 + [(1, 0)] * 12 + [(0, 1)] * 3 + [(0, 0)] * 55  # (baseline, run)
    baseline = {i: 100.0 * b for i, (b, _) in enumerate(items)}
    run = {i: 100.0 * r for i, (_, r) in enumerate(items)}
    result = paired_test(run, baseline)
    assert (result.test, result.n, result.up, result.down, result.flips) == ("McNemar exact", 100, 3, 12, 15)
    assert result.p_value == pytest.approx(expected, rel=1e-12)
    assert result.p_value == pytest.approx(binomtest(3, 15, 0.5).pvalue, rel=1e-12)


def test_paired_test_uses_common_items_and_permutations_for_continuous_values():
    assert paired_test({1: 1.0, 2: 0.0, 4: 1.0}, {2: 0.0, 3: 1.0, 4: 0.0}).n == 2
    assert paired_test({1: 1.0, 2: 1.0}, {2: 1.0}) is None  # one common item: nothing to test
    # exact sign-flip test: differences (1, 2, 3); |sum| >= 6 only for all-same signs: 2 of 8
    assert permutation_p_value(np.array([1.0, 2.0, 3.0, 0.0])) == pytest.approx(2 / 8)
    result = paired_test({i: float(i) + 0.5 for i in range(40)}, {i: float(i) for i in range(40)})
    assert result.test == "paired permutation" and result.flips is None
    assert result.p_value == pytest.approx(1 / 10_001) and result.mean_difference == pytest.approx(0.5)


# ------------------------------------------------------------------ reading and baselines


def test_reads_study_cells_and_plain_lm_eval_output(results_dir):
    runs = load_runs(results_dir)
    keys = {run.key for run in runs}
    assert ("pythia-70m", "step15000", "dynamic_int8") in keys
    assert ("EleutherAI/pythia-410m-deduped", "step15000", "none") in keys  # stock hf, model_args a string
    assert ("EleutherAI/pythia-410m-deduped", "step15000", "rtn(bits=4)") in keys  # only what the user set
    stereoset = next(run for run in runs if run.key == ("pythia-70m", "step1000", "none"))
    assert stereoset.top_level_tasks() == ["crows_pairs_bias", "stereoset_bias", "arc_easy"]
    assert len(stereoset.item_values("stereoset_bias", "ss")) == 12  # a group of a group: all four leaves' items
    assert set(stereoset.item_values("stereoset_bias", "ss").values()) <= {0.0, 1.0}


def test_delta_and_mcnemar_against_the_hand_made_pair(board):
    wide = board.wide()
    int8 = row(wide, "pythia-70m", "step15000", "dynamic_int8")
    column = "crows_pairs_bias/stereotype_score"
    assert row(wide, "pythia-70m", "step15000", "none")[column] == pytest.approx(HAND_EXPECTED["none"])
    assert int8[column] == pytest.approx(HAND_EXPECTED["dynamic_int8"])
    assert int8[f"{column} delta"] == pytest.approx(HAND_EXPECTED["dynamic_int8"] - HAND_EXPECTED["none"])
    assert int8[f"{column} flips"] == HAND_EXPECTED["up"] + HAND_EXPECTED["down"]
    assert int8[f"{column} p_value"] == pytest.approx(HAND_EXPECTED["p_value"])
    assert int8[f"{column} test"] == "McNemar exact" and int8[f"{column} n_pairs"] == 12


def test_baselines_students_and_stock_tasks(board, results_dir):
    wide = board.wide()
    assert {
        "crows_pairs_bias/stereotype_score",
        "stereoset_bias/ss",
        "stereoset_bias/lms",
        "stereoset_bias/icat",
        "arc_easy/acc_norm",
    } <= set(board.columns)
    none = row(wide, "pythia-160m", "step15000", "none")
    assert np.isnan(none["crows_pairs_bias/stereotype_score delta"])  # a baseline has no Δ
    student = row(wide, "distilpythia-70m", "main", "none")  # compared with its teacher, from cell.json
    assert student["crows_pairs_bias/stereotype_score baseline"] == "pythia-160m · step15000 · none"
    assert student["crows_pairs_bias/stereotype_score test"] == "McNemar exact"
    rtn = row(wide, "EleutherAI/pythia-410m-deduped", "step15000", "rtn(bits=4)")
    assert rtn["arc_easy/acc_norm test"] == "McNemar exact" and not np.isnan(rtn["arc_easy/acc_norm p_value"])
    # stereoset's own interval is used when it reports one; its lms has item values 0..2: permutation test
    ss = row(wide, "pythia-70m", "step1000", "dynamic_int8")
    assert ss["stereoset_bias/ss ci_high"] - ss["stereoset_bias/ss"] == pytest.approx(15.0)
    assert ss["stereoset_bias/lms test"] == "paired permutation"
    assert np.isnan(ss["stereoset_bias/icat p_value"])  # no per-item ICAT: no test
    # a teacher given on the command line wins over the one in cell.json
    runs = load_runs(results_dir)
    other = build_leaderboard(runs, teachers={"distilpythia-70m": "pythia-70m"}).wide()
    assert (
        row(other, "distilpythia-70m", "main", "none")["crows_pairs_bias/stereotype_score baseline"]
        == "pythia-70m · step15000 · none"
    )


def test_a_plain_student_run_is_compared_with_the_teacher_its_results_name(tmp_path):
    """No study cell.json: the teacher comes from the results config's `distillation` record."""
    teacher_arc = [1, 0, 1, 1, 0, 1, 0, 1, 1, 0]
    student_arc = [0, 0, 1, 0, 0, 1, 0, 1, 0, 0]  # 3 of the teacher's correct items lost, none gained
    _write(
        tmp_path,
        "2025-01-01T00-00-00.000000",
        "hf",
        "pretrained=EleutherAI/pythia-410m-deduped,revision=v1",
        [_arc(teacher_arc)],
    )
    _write(
        tmp_path,
        "2025-01-01T00-00-01.000000",
        "distilled_hf",
        "pretrained=me/student-410m",
        [_arc(student_arc)],
        distillation={"teacher": "EleutherAI/pythia-410m-deduped", "teacher_revision": "v1"},
    )
    student = row(build_leaderboard(load_runs(tmp_path)).wide(), "me/student-410m", "main", "none")
    assert student["arc_easy/acc_norm baseline"] == "EleutherAI/pythia-410m-deduped · v1 · none"
    assert student["arc_easy/acc_norm delta"] == pytest.approx(3 / 10 - 6 / 10)  # in the metric's own units
    assert student["arc_easy/acc_norm p_value"] == pytest.approx(binomtest(0, 3, 0.5).pvalue)


def test_cli_formats_filters_and_sort(results_dir, tmp_path, capsys):
    assert main(["leaderboard", str(results_dir), "--model", "pythia-70m", "--compression", "dynamic_int8"]) == 0
    text = capsys.readouterr().out
    assert "−33.3 (p=0.22, 6 flipped)" in text and "pythia-160m" not in text
    table, verdicts = text.strip().split("\n\n")
    assert len(table.splitlines()) == 2 + 3  # header, rule, three revisions
    assert len(verdicts.splitlines()) == 3  # one closing sentence per compressed cell

    assert (
        main(["leaderboard", str(results_dir), "-o", str(tmp_path / "board.md"), "--metrics", "stereotype_score"]) == 0
    )
    capsys.readouterr()
    markdown = (tmp_path / "board.md").read_text()
    assert markdown.startswith(
        "| model | revision | compression | capability | crows_pairs_bias/stereotype_score (95% CI) |"
    )
    assert "| pythia-70m | step15000 | none |  | 91.7 ± " in markdown  # an uncompressed cell has no capability verdict

    assert main(["leaderboard", str(results_dir), "--format", "csv", "--sort", "delta:stereotype_score"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    deltas = [
        float(r["crows_pairs_bias/stereotype_score delta"])
        for r in rows
        if r["crows_pairs_bias/stereotype_score delta"]
    ]
    assert deltas == sorted(deltas) and len(rows) == len(board_rows(results_dir))

    assert main(["leaderboard", str(results_dir), "-o", str(tmp_path / "board.html")]) == 0
    page = (tmp_path / "board.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<table>" in page and "http" not in page  # self-contained
    assert main(["leaderboard", str(tmp_path / "nothing-here")]) == 2


def board_rows(results_dir):
    return build_leaderboard(load_runs(results_dir)).wide()


def test_a_checkpoint_compressed_elsewhere_is_compared_with_the_base_named(tmp_path, capsys):
    """A compressed-tensors checkpoint is a model of its own: --base names the uncompressed model it came from."""
    from fixtures.results import compression_record

    base_arc = [1, 0, 1, 1, 0, 1, 0, 1, 1, 0]
    compressed_arc = [1, 0, 0, 1, 0, 0, 0, 1, 1, 1]  # 2 of the base's correct items lost, 1 gained
    _write(
        tmp_path,
        "2025-01-01T00-00-00.000000",
        "quantized_hf",
        "pretrained=org/model-1b",
        [_arc(base_arc)],
        quantization=compression_record("none", "none", {}, 32),
    )
    _write(
        tmp_path,
        "2025-01-01T00-00-01.000000",
        "quantized_hf",
        "pretrained=org/model-1b-W4A16,quantization=compressed_tensors",
        [_arc(compressed_arc)],
        quantization=compression_record("compressed_tensors", "compressed_tensors", {}, 4, effective=4.25),
    )
    alone = row(build_leaderboard(load_runs(tmp_path)).wide(), "org/model-1b-W4A16", "main", "compressed_tensors")
    assert alone["arc_easy/acc_norm baseline"] == ""  # no uncompressed cell of its own
    compared = row(
        build_leaderboard(load_runs(tmp_path), teachers={"org/model-1b-W4A16": "org/model-1b"}).wide(),
        "org/model-1b-W4A16",
        "main",
        "compressed_tensors",
    )
    assert compared["arc_easy/acc_norm baseline"] == "org/model-1b · main · none"
    assert compared["arc_easy/acc_norm delta"] == pytest.approx(5 / 10 - 6 / 10)
    assert compared["arc_easy/acc_norm p_value"] == pytest.approx(binomtest(1, 3, 0.5).pvalue)

    assert main(["leaderboard", str(tmp_path), "--format", "csv", "--base", "org/model-1b-W4A16=org/model-1b"]) == 0
    rows = {r["model"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert rows["org/model-1b-W4A16"]["arc_easy/acc_norm baseline"] == "org/model-1b · main · none"
    assert main(["leaderboard", str(tmp_path), "--base", "org/model-1b-W4A16"]) != 0
    assert "--base expects CHECKPOINT=BASE" in capsys.readouterr().err


# ------------------------------------------------------------------ a cell's tasks split over several runs


def test_cells_of_one_key_holding_different_tasks_read_as_one_run(results_dir, tmp_path):
    """A study's second task entry adds a run per (model, revision, compression) next to the finished one:
    the leaderboard (values, Δs, paired tests, capability verdicts, tercile flips, every format) and the
    long table the figures read are those of one run holding every task."""
    split = write_fixture(tmp_path / "split", split=True)
    assert len(load_runs(split / "study")) > len(load_runs(results_dir / "study"))  # one run per task here
    whole, parts = build_leaderboard(load_runs(results_dir)), build_leaderboard(load_runs(split))
    assert parts.columns == whole.columns
    pd.testing.assert_frame_equal(parts.wide(), whole.wide())
    pd.testing.assert_frame_equal(parts.long.drop(columns=["run", "date"]), whole.long.drop(columns=["run", "date"]))
    assert "capability" in whole.wide() and "crows_pairs_bias flips_low" in whole.wide()  # both were compared
    for fmt in ("terminal", "markdown", "csv", "html"):
        assert render(parts.wide(), parts.columns, fmt) == render(whole.wide(), whole.columns, fmt)
