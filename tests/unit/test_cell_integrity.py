"""A finished cell counts as finished only while its files read back whole (no model runs here).

The cell folders are written by hand: a results JSON and two samples files in lm-eval's layout, and a
`cell.json` with or without the `files` record (cells finished before it existed have none).
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from lm_eval_bias.study import plan_report
from lm_eval_bias.study.cell import CELL_RECORD, Cell, cell_state
from lm_eval_bias.study.integrity import file_record

ROOT = Path(__file__).resolve().parents[2]
CELL = Cell(model="org/m", name="m", revision=None, compression_name="none", compression={}, task="crows_pairs_bias")
DATE = "2026-01-01T00-00-00.000000"
RESULTS = f"org__m/results_{DATE}.json"
AGE = f"org__m/samples_crows_pairs_bias_age_{DATE}.jsonl"
GENDER = f"org__m/samples_crows_pairs_bias_gender_{DATE}.jsonl"
ROWS = [{"doc_id": i, "resps": [[["-1.5", False]]], "target": 0} for i in range(3)]


def write_cell(out: Path, record_files: bool = True) -> Path:
    folder = out / CELL.hash
    (folder / "org__m").mkdir(parents=True)
    results = {"results": {"crows_pairs_bias_age": {}}, "config": {}, "n-samples": {}}
    for name in (AGE, GENDER):
        task = name.split("samples_")[1][: -len(f"_{DATE}.jsonl")]
        (folder / name).write_text("".join(json.dumps(row) + "\n" for row in ROWS), encoding="utf-8")
        results["n-samples"][task] = {"original": 3, "effective": 3}
    (folder / RESULTS).write_text(json.dumps(results, indent=2), encoding="utf-8")
    record = {"hash": CELL.hash, "cell": CELL.settings(), "labels": {"model": "m"}, "seconds": 1.0}
    if record_files:
        record["files"] = file_record(folder, CELL_RECORD)
    (folder / CELL_RECORD).write_text(json.dumps(record, indent=2), encoding="utf-8")
    return folder


def cut(path: Path, size: int) -> None:
    path.write_bytes(path.read_bytes()[:size])


def test_the_record_names_every_file_with_its_size_and_hash(tmp_path):
    folder = write_cell(tmp_path)
    files = json.loads((folder / CELL_RECORD).read_text())["files"]
    assert sorted(files) == sorted([RESULTS, AGE, GENDER])  # not cell.json itself
    for name, entry in files.items():
        data = (folder / name).read_bytes()
        assert entry == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert cell_state(tmp_path, CELL) == ("finished", "")
    assert "files" not in CELL.settings()  # the record is not hashed: a cell keeps its folder name


def test_a_cell_without_a_folder_is_to_run(tmp_path):
    assert cell_state(tmp_path, CELL) == ("to run", "")


@pytest.mark.parametrize("record_files", [True, False], ids=["recorded", "legacy"])
def test_a_truncated_results_file_makes_the_cell_damaged(tmp_path, record_files):
    folder = write_cell(tmp_path, record_files)
    size = (folder / RESULTS).stat().st_size
    cut(folder / RESULTS, 30)
    state, problem = cell_state(tmp_path, CELL)
    assert state == "damaged"
    if record_files:
        assert problem == f"{folder / RESULTS}: 30 bytes, cell.json recorded {size} (cut short or changed)"
    else:  # no record: the file must parse; 30 bytes end inside line 3 of the indented JSON
        assert problem.startswith(f"{folder / RESULTS}: line 3, column ")


@pytest.mark.parametrize("record_files", [True, False], ids=["recorded", "legacy"])
def test_a_samples_file_cut_inside_a_line_makes_the_cell_damaged(tmp_path, record_files):
    folder = write_cell(tmp_path, record_files)
    first = len(json.dumps(ROWS[0])) + 1
    cut(folder / GENDER, first + 10)  # line 2 keeps 10 characters
    state, problem = cell_state(tmp_path, CELL)
    assert state == "damaged"
    if record_files:
        assert problem.startswith(f"{folder / GENDER}: {first + 10} bytes, cell.json recorded ")
    else:
        assert problem.startswith(f"{folder / GENDER}: line 2, column ")
        assert problem.endswith("(the file ends inside this line: cut short?)")


def test_a_legacy_samples_file_cut_at_a_line_end_is_caught_by_its_row_count(tmp_path):
    folder = write_cell(tmp_path, record_files=False)
    cut(folder / AGE, 2 * (len(json.dumps(ROWS[0])) + 1))  # two whole rows of three
    assert cell_state(tmp_path, CELL) == (
        "damaged",
        f"{folder / AGE}: 2 rows, but its results file says crows_pairs_bias_age scored 3 (cut short?)",
    )


def test_a_changed_byte_a_missing_file_and_a_broken_marker(tmp_path):
    folder = write_cell(tmp_path)
    data = bytearray((folder / AGE).read_bytes())
    data[12] = ord("7") if data[12] != ord("7") else ord("8")  # same size, other content
    (folder / AGE).write_bytes(bytes(data))
    assert cell_state(tmp_path, CELL) == (
        "damaged",
        f"{folder / AGE}: its SHA-256 differs from the one cell.json recorded (changed after the cell finished)",
    )
    (folder / AGE).unlink()
    assert cell_state(tmp_path, CELL)[1] == f"{folder / AGE}: missing (cell.json records {len(data)} bytes)"
    cut(folder / CELL_RECORD, 40)
    state, problem = cell_state(tmp_path, CELL)
    assert state == "damaged" and problem.startswith(f"{folder / CELL_RECORD}: line ")
    (folder / CELL_RECORD).unlink()
    assert cell_state(tmp_path, CELL) == (
        "damaged",
        f"{folder / CELL_RECORD}: missing (a cell folder the study did not finish)",
    )


def test_a_legacy_cell_that_reads_whole_is_finished(tmp_path):
    write_cell(tmp_path, record_files=False)
    assert cell_state(tmp_path, CELL) == ("finished", "")


def test_dry_run_lists_a_damaged_cell_with_the_file(tmp_path):
    folder = write_cell(tmp_path)
    cut(folder / RESULTS, 30)
    report = plan_report([(cell_state(tmp_path, CELL)[0], CELL)], tmp_path).splitlines()
    assert report[0] == f"damaged   {CELL.hash}  m @ main · none · crows_pairs_bias"
    assert report[1].startswith(f"damaged: m @ main · none · crows_pairs_bias [{CELL.hash}]: {folder / RESULTS}: ")
    assert report[1].endswith("it runs again (the old folder goes to .damaged/)")
    assert report[2] == f"1 cells: 0 finished (kept as they are), 1 to run (1 of them damaged), into {tmp_path}"


def test_the_committed_gemma_cells_are_still_finished(tmp_path):
    """docs/gemma-3-270m/cells/ was archived before cell.json recorded its files: such cells read whole,
    keep their hashes, and are never run again."""
    archive = ROOT / "docs/gemma-3-270m/cells/dynamic_int8.crows_pairs_bias+stereoset_bias+seat_bias.tar.xz"
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path, filter="data")
    (folder,) = [path for path in tmp_path.iterdir() if path.is_dir()]
    record = json.loads((folder / CELL_RECORD).read_text())
    assert "files" not in record
    cell = Cell.from_dict(record["cell"])
    assert cell.hash == folder.name == record["hash"]
    assert cell_state(tmp_path, cell) == ("finished", "")
