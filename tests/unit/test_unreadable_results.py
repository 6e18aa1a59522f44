"""`leaderboard` and `plot` refuse a results folder holding a file that does not read back whole, naming the file
and the line; `--skip-unreadable` leaves out the run it belongs to and lists it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.results import write_fixture
from lm_eval_bias.cli import main
from lm_eval_bias.leaderboard import UnreadableResultsError, load_runs

HINT = "(--skip-unreadable leaves out the runs they belong to)"
CELL = "study/000000000000000a/EleutherAI__pythia-160m-deduped"  # pythia-160m @ step15000 · none (its cell.json)
SAMPLES = f"{CELL}/samples_crows_pairs_bias_age_2025-01-01T00-00-10.000000.jsonl"
RESULTS = f"{CELL}/results_2025-01-01T00-00-10.000000.json"


@pytest.fixture
def results(tmp_path) -> Path:
    return write_fixture(tmp_path / "results")


def cut_inside_line_2(path: Path, keep: int = 20) -> int:
    """Keep line 1 whole and `keep` characters of line 2 (a copy stopped mid-write); returns line 1's length."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text(lines[0] + lines[1][:keep], encoding="utf-8")
    return len(lines[0])


def test_a_truncated_samples_file_is_named_with_its_line(results, capsys, tmp_path):
    cut_inside_line_2(results / SAMPLES)
    board = tmp_path / "board.md"
    assert main(["leaderboard", str(results), "-o", str(board)]) == 2
    err = capsys.readouterr().err
    prefix = f"lm-eval-bias: unreadable {results / SAMPLES}: line 2, column "
    assert err.startswith(prefix), err
    assert err.endswith(f"(the file ends inside this line: cut short?) {HINT}\n")
    assert err.count("\n") == 1  # one line
    assert not board.exists()  # nothing written


def test_a_truncated_results_file_is_named_not_dropped(results):
    text = (results / RESULTS).read_text(encoding="utf-8")
    (results / RESULTS).write_text(text[: text.index('"config"')], encoding="utf-8")  # cut before "config"
    line = text[: text.index('"config"')].count("\n") + 1
    with pytest.raises(UnreadableResultsError) as caught:
        load_runs(results)
    (error,) = caught.value.unreadable
    assert error.path == results / RESULTS and error.reason.startswith(f"line {line}, column ")


def test_a_samples_file_cut_at_a_line_end_is_caught_by_its_row_count(results):
    lines = (results / SAMPLES).read_text(encoding="utf-8").splitlines(keepends=True)
    (results / SAMPLES).write_text("".join(lines[:-1]), encoding="utf-8")
    expected = json.loads((results / RESULTS).read_text())["n-samples"]["crows_pairs_bias_age"]["effective"]
    assert expected == len(lines)
    with pytest.raises(UnreadableResultsError) as caught:
        load_runs(results)
    assert str(caught.value) == (
        f"unreadable {results / SAMPLES}: {len(lines) - 1} rows, but its results file says crows_pairs_bias_age "
        f"scored {len(lines)} (cut short?) {HINT}"
    )


def test_invalid_utf8_and_a_broken_cell_json_are_named(results):
    data = (results / SAMPLES).read_bytes().split(b"\n")
    data[1] = data[1][:5] + b"\xff" + data[1][6:]
    (results / SAMPLES).write_bytes(b"\n".join(data))
    (results / "study/0000000000000001/cell.json").write_text('{"labels": {', encoding="utf-8")
    with pytest.raises(UnreadableResultsError) as caught:
        load_runs(results)
    first, second = str(caught.value).splitlines()[1:]
    assert first.startswith(f"unreadable {results / 'study/0000000000000001/cell.json'}: line 1, column 13: ")
    assert second.startswith(f"unreadable {results / SAMPLES}: line 2, column 6: not UTF-8")
    assert str(caught.value).splitlines()[0] == f"2 unreadable results files under {results} {HINT}:"


def test_skip_unreadable_leaves_out_the_run_and_lists_it(results, capsys, tmp_path):
    whole = len(load_runs(results))
    cut_inside_line_2(results / SAMPLES)
    assert len(load_runs(results, skip_unreadable=True)) == whole - 1
    board = tmp_path / "board.csv"
    assert main(["leaderboard", str(results), "--skip-unreadable", "-o", str(board)]) == 0
    captured = capsys.readouterr()
    (skipped,) = captured.err.splitlines()
    assert skipped.startswith(f"lm-eval-bias: skipped unreadable {results / SAMPLES}: line 2, column ")
    rows = board.read_text().splitlines()
    assert not [row for row in rows if row.startswith("pythia-160m,step15000,none,")]  # its row is left out
    assert [row for row in rows if row.startswith("pythia-160m,step8000,none,")]  # the others stay
    assert len(rows) == 1 + 17  # the header and every other row of the 18


def test_plot_refuses_and_skips_as_the_leaderboard(results, capsys, tmp_path):
    cut_inside_line_2(results / SAMPLES)
    figures = tmp_path / "figures"
    assert main(["plot", str(results), "-o", str(figures), "--formats", "png"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lm-eval-bias: unreadable {results / SAMPLES}: line 2, column ") and HINT in err
    assert not figures.exists()
    assert main(["plot", str(results), "-o", str(figures), "--formats", "png", "--skip-unreadable"]) == 0
    out = capsys.readouterr().out.splitlines()
    listed = [line for line in out if line.startswith("skipped unreadable")]
    assert len(listed) == 1 and listed[0].startswith(f"skipped unreadable {results / SAMPLES}: line 2, column ")
    assert listed[0].endswith("(its run left out)")
