"""benchmarks/export_study.py with two cells per compression (a task entry added to a finished grid): one file
per cell, named by compression and task list, none overwriting another; cells.csv one row per cell."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import tarfile
from pathlib import Path

from fixtures.results import RECORDS, _arc, _crows, _write
from lm_eval_bias.leaderboard import build_leaderboard, load_runs

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "export_study.py"
BBQ = ",".join(
    f"bbq_bias_{c}"
    for c in ("age", "disability_status", "nationality", "physical_appearance", "religion", "sexual_orientation")
)


def _export_module():
    spec = importlib.util.spec_from_file_location("export_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _study(root: Path) -> Path:
    """none and dynamic_int8, each as two cells: CrowS-Pairs, then (the added entry) a long task list."""
    for index, (compression, tasks, part) in enumerate(
        (
            ("none", "crows_pairs_bias", _crows([1] * 12)),
            ("dynamic_int8", "crows_pairs_bias", _crows([0] * 6 + [1] * 6)),
            ("none", BBQ, _arc([1, 0, 1, 1])),
            ("dynamic_int8", BBQ, _arc([1, 0, 0, 1])),
        )
    ):
        labels = {"model": "m", "revision": "main", "compression": compression, "task": tasks}
        record = {"hash": f"{index:016x}", "labels": labels, "cell": {}, "seconds": 10.0 * (index + 1)}
        if index == 0:  # recorded by the study since 2026-12-07; the other cells are older
            record["load"] = {"start": [0.5, 0.4, 0.3], "end": [1.9, 1.5, 1.2]}
        date = f"2025-01-01T00-00-0{index}.000000"
        _write(root / record["hash"], date, "quantized_hf", "pretrained=m", [part], RECORDS[compression], record)
    return root


def test_two_cells_per_compression_export_side_by_side(tmp_path):
    export = _export_module()
    study, out = _study(tmp_path / "study"), tmp_path / "out"
    (out / "results").mkdir(parents=True)
    (out / "results" / "none.json").write_text("{}")  # an earlier export's name: removed
    rows = export.export_cells(study, out, model_dir=None, pauses=None, archive=True)

    stems = {
        "none.crows_pairs_bias",
        "dynamic_int8.crows_pairs_bias",
        "none.bbq_bias_age+5_more",
        "dynamic_int8.bbq_bias_age+5_more",
    }
    assert {path.name for path in (out / "results").iterdir()} == {f"{stem}.json" for stem in stems}
    assert {path.name for path in (out / "cells").iterdir()} == {f"{stem}.tar.xz" for stem in stems}
    with tarfile.open(out / "cells" / "none.bbq_bias_age+5_more.tar.xz") as tar:
        assert tar.getnames()[0] == "0000000000000002" and any(n.endswith("cell.json") for n in tar.getnames())
    results = json.loads((out / "results" / "dynamic_int8.crows_pairs_bias.json").read_text())
    assert list(results["results"])[-1] == "crows_pairs_bias"

    with open(out / "cells.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == len(rows) == 4  # one row per cell
    assert {(r["compression"], r["tasks"], r["file"]) for r in table} == {
        ("none", "crows_pairs_bias", "none.crows_pairs_bias"),
        ("dynamic_int8", "crows_pairs_bias", "dynamic_int8.crows_pairs_bias"),
        ("none", BBQ, "none.bbq_bias_age+5_more"),
        ("dynamic_int8", BBQ, "dynamic_int8.bbq_bias_age+5_more"),
    }
    assert sorted(float(r["wall_s"]) for r in table) == [10.0, 20.0, 30.0, 40.0]
    loads = {r["file"]: (r["load_start_1m"], r["load_end_1m"], r["load_end_15m"]) for r in table}
    assert loads["none.crows_pairs_bias"] == ("0.5", "1.9", "1.2")
    assert loads["dynamic_int8.crows_pairs_bias"] == ("", "", "")

    # the archives unpacked into a fresh folder give back one leaderboard row per compression
    restored = tmp_path / "restored"
    for archive in (out / "cells").iterdir():
        with tarfile.open(archive) as tar:
            tar.extractall(restored, filter="data")
    wide = build_leaderboard(load_runs(restored)).wide().set_index("compression")
    assert list(wide.index) == ["none", "dynamic_int8"]
    assert wide.loc["dynamic_int8", "crows_pairs_bias/stereotype_score p_value"] == 2 / 64
    assert wide.loc["dynamic_int8", "arc_easy/acc_norm baseline"] == "m · main · none"


def test_cell_names_are_unique():
    export = _export_module()
    assert export.task_label("crows_pairs_bias,stereoset_bias,seat_bias") == "crows_pairs_bias+stereoset_bias+seat_bias"
    assert export.task_label(BBQ) == "bbq_bias_age+5_more"
    cells = [
        {"hash": "a" * 16, "labels": {"compression": "rtn(bits=4)", "task": BBQ}},
        {"hash": "b" * 16, "labels": {"compression": "rtn(bits=4)", "task": BBQ.replace("religion", "ses")}},
        {"hash": "c" * 16, "labels": {"compression": "gptq(calibration=results/c.txt)", "task": "crows_pairs_bias"}},
    ]
    assert export.cell_names(cells) == {
        "a" * 16: f"rtn(bits=4).bbq_bias_age+5_more.{'a' * 16}",  # same first task and count: the hash tells
        "b" * 16: f"rtn(bits=4).bbq_bias_age+5_more.{'b' * 16}",
        "c" * 16: "gptq(calibration=results_c.txt).crows_pairs_bias",
    }
    # a second model (a student beside its teacher's grid): its cells are named by it too
    models = [
        {"hash": h, "labels": {**labels, "model": "teacher"}} for h, labels in zip("abc", [c["labels"] for c in cells])
    ]
    models.append(
        {"hash": "d" * 16, "labels": {"model": "my/student", "compression": "none", "task": "crows_pairs_bias"}}
    )
    assert export.cell_names(models)["d" * 16] == "my_student.none.crows_pairs_bias"
    assert export.cell_names(models)["c"] == "gptq(calibration=results_c.txt).crows_pairs_bias"


def test_archives_are_rewritten_only_for_cells_finished_since(tmp_path):
    import os

    export = _export_module()
    study, out = _study(tmp_path / "study"), tmp_path / "out"
    export.export_cells(study, out, model_dir=None, pauses=None, archive=True)
    kept, rerun = out / "cells" / "none.crows_pairs_bias.tar.xz", out / "cells" / "dynamic_int8.crows_pairs_bias.tar.xz"
    for archive in (kept, rerun):
        os.utime(archive, (1_000_000_000, 1_000_000_000))  # written long ago
    os.utime(study / f"{0:016x}" / "cell.json", (900_000_000, 900_000_000))  # none finished before that
    # dynamic_int8 ran again after its archive was written: a new result in its folder
    (study / f"{1:016x}" / "cell.json").touch()
    (study / f"{1:016x}" / "rerun.txt").write_text("new")
    export.export_cells(study, out, model_dir=None, pauses=None, archive=True)
    assert kept.stat().st_mtime == 1_000_000_000  # left as it was
    with tarfile.open(rerun) as tar:
        assert f"{1:016x}/rerun.txt" in tar.getnames()


def test_scrubbed_names_no_local_checkout():
    export = _export_module()
    text = '{"task": "/elsewhere/wt-study/tasks/bbq_bias/bbq_bias_age.yaml", "n": "/data/x.csv"}'
    assert export.scrubbed(text, None) == '{"task": "<checkout>/tasks/bbq_bias/bbq_bias_age.yaml", "n": "/data/x.csv"}'


def test_an_archive_too_large_for_the_repository_is_not_kept(tmp_path, monkeypatch, capsys):
    export = _export_module()
    study, out = _study(tmp_path / "study"), tmp_path / "out"
    sizes = {}
    export.export_cells(study, out, model_dir=None, pauses=None, archive=True)
    for archive in (out / "cells").iterdir():
        sizes[archive.name] = archive.stat().st_size
    largest = max(sizes, key=sizes.get)
    monkeypatch.setattr(export, "MAX_ARCHIVE_BYTES", sizes[largest] - 1)  # only the largest is over
    for archive in (out / "cells").iterdir():
        archive.unlink()
    export.export_cells(study, out, model_dir=None, pauses=None, archive=True)
    assert {p.name for p in (out / "cells").iterdir()} == set(sizes) - {largest}
    assert f"not archived: {largest[: -len('.tar.xz')]} " in capsys.readouterr().out
    assert (out / "results" / f"{largest[: -len('.tar.xz')]}.json").is_file()  # its results file is still there


def test_an_archive_stops_compressing_once_past_the_limit(tmp_path, monkeypatch):
    export = _export_module()
    folder = tmp_path / "cell"
    folder.mkdir()
    (folder / "samples.bin").write_bytes(os.urandom(200_000))  # random bytes: xz cannot shrink them
    (folder / "cell.json").write_text("{}")
    full = tmp_path / "full.tar.xz"
    assert export.write_archive(folder, full)  # under the real 2 MB limit: kept, and a readable archive
    with tarfile.open(full) as tar:
        assert tar.extractfile("cell/samples.bin").read() == (folder / "samples.bin").read_bytes()

    monkeypatch.setattr(export, "MAX_ARCHIVE_BYTES", full.stat().st_size)  # exactly its size: still kept
    assert export.write_archive(folder, tmp_path / "exact.tar.xz")
    assert (tmp_path / "exact.tar.xz").read_bytes() == full.read_bytes()

    written = []
    real_write = export._CappedFile.write

    def spy(self, data):
        written.append(len(data))
        return real_write(self, data)

    monkeypatch.setattr(export._CappedFile, "write", spy)
    monkeypatch.setattr(export, "MAX_ARCHIVE_BYTES", 50_000)
    assert not export.write_archive(folder, tmp_path / "over.tar.xz")
    assert not (tmp_path / "over.tar.xz").exists()
    # it stopped at the first write past 50 kB instead of compressing all 200 kB (closing the stream after the
    # error may try one more write, refused too)
    assert 50_000 < sum(written) < full.stat().st_size / 2


def test_a_resumed_cell_counts_the_pauses_of_each_of_its_runs(tmp_path):
    """A cell cut off at 200 and resumed at 300 ran [100, 200] and [300, 350] (cell.json "attempts", seconds
    150); the study was stopped 150-170 and 310-320, and also 220-260, between its runs, which is no cell's
    time: 30 s stopped, 120 s of wall time."""
    export = _export_module()
    study, out = _study(tmp_path / "study"), tmp_path / "out"
    folder = study / f"{0:016x}"
    record = json.loads((folder / "cell.json").read_text())
    record.update(seconds=150.0, attempts=[[100.0, 200.0], [300.0, 350.0]])
    (folder / "cell.json").write_text(json.dumps(record))
    pauses = tmp_path / "pauses.log"
    pauses.write_text("stop 150 a\ncont 170\nstop 220\ncont 260\nstop 310\ncont 320\n")
    rows = export.export_cells(study, out, model_dir=None, pauses=pauses, archive=False)
    (row,) = [r for r in rows if r["hash"] == record["hash"]]
    assert (row["stopped_s"], row["wall_s"]) == (30.0, 120.0)


def test_merge_keeps_the_cells_a_restored_folder_lacks(tmp_path, monkeypatch):
    """A study folder restored from the archives lacks a cell that was too large to archive: exporting it with
    --merge keeps that cell's results file and cells.csv row and adds the new cell; without --merge they go."""
    export = _export_module()
    study, out = _study(tmp_path / "study"), tmp_path / "out"
    export.export_cells(study, out, model_dir=None, pauses=None, archive=True)
    with open(out / "cells.csv", newline="") as handle:
        before = {row["hash"]: row for row in csv.DictReader(handle)}
    lacking = f"{3:016x}"  # dynamic_int8's BBQ cell
    shutil.rmtree(study / lacking)
    (out / "cells" / "dynamic_int8.bbq_bias_age+5_more.tar.xz").unlink()  # it was never archived
    monkeypatch.setattr(export, "run", lambda *a: (_ for _ in ()).throw(AssertionError("leaderboard rerun")))
    export.export(study, out, model_dir=None, pauses=None, archive=True, merge=True)

    with open(out / "cells.csv", newline="") as handle:
        after = {row["hash"]: row for row in csv.DictReader(handle)}
    assert after == before  # the kept row as it was, the others rewritten alike
    assert (out / "results" / "dynamic_int8.bbq_bias_age+5_more.json").is_file()

    rows = export.export_cells(study, out, model_dir=None, pauses=None, archive=True)  # no --merge
    assert lacking not in {row["hash"] for row in rows}
    assert not (out / "results" / "dynamic_int8.bbq_bias_age+5_more.json").exists()


def test_an_unfinished_cells_responses_are_archived_until_it_finishes(tmp_path):
    """A cell cut off leaves .cache/<hash>/ (its attempts and responses): archived so that it unpacks into
    another machine's study folder as it was, last-write time included (its cut-off attempt ends there);
    removed from the export once the cell has finished."""
    export = _export_module()
    study, out = _study(tmp_path / "study"), tmp_path / "out"
    cache = study / ".cache" / "abcdef0123456789"
    cache.mkdir(parents=True)
    (cache / "attempts.json").write_text("[[100.0, null]]")
    (cache / "responses_rank0.db").write_bytes(os.urandom(5000))
    os.utime(cache / "responses_rank0.db", (1_500_000_000, 1_500_000_000))
    assert export.export_unfinished(study, out) == ["abcdef0123456789"]

    restored = tmp_path / "restored"
    restored.mkdir()
    with tarfile.open(out / "cells" / "unfinished" / "abcdef0123456789.tar.xz") as tar:
        tar.extractall(restored, filter="data")
    again = restored / ".cache" / "abcdef0123456789"
    for name in ("attempts.json", "responses_rank0.db"):
        assert (again / name).read_bytes() == (cache / name).read_bytes()
    assert (again / "responses_rank0.db").stat().st_mtime == 1_500_000_000

    assert export.export_unfinished(study, out, merge=True) == ["abcdef0123456789"]
    shutil.rmtree(cache)  # finished on another machine: this folder has no cache, and no cell
    assert export.export_unfinished(study, out, merge=True) == []
    assert (out / "cells" / "unfinished" / "abcdef0123456789.tar.xz").is_file()  # --merge keeps it
    (study / "abcdef0123456789").mkdir()
    (study / "abcdef0123456789" / "cell.json").write_text("{}")  # now finished here
    export.export_unfinished(study, out, merge=True)
    assert not (out / "cells" / "unfinished" / "abcdef0123456789.tar.xz").exists()


def test_responses_written_while_archived_are_archived_again(tmp_path, monkeypatch):
    """The study writes a cell's responses while the export reads them: an archive read across a write is
    made again, so the one kept holds the folder as it was after the write."""
    export = _export_module()
    study, out = _study(tmp_path / "study"), tmp_path / "out"
    cache = study / ".cache" / "abcdef0123456789"
    cache.mkdir(parents=True)
    (cache / "responses_rank0.db").write_bytes(b"first")
    real, calls = export.write_archive, []

    def write_during_first(folder, target, arcname=None):
        written = real(folder, target, arcname=arcname)
        calls.append(target)
        if len(calls) == 1:  # the study writes while the first archive was being read
            (cache / "responses_rank0.db").write_bytes(b"first and second")
        return written

    monkeypatch.setattr(export, "write_archive", write_during_first)
    assert export.export_unfinished(study, out) == ["abcdef0123456789"]
    assert len(calls) == 2
    with tarfile.open(out / "cells" / "unfinished" / "abcdef0123456789.tar.xz") as tar:
        assert tar.extractfile(".cache/abcdef0123456789/responses_rank0.db").read() == b"first and second"
