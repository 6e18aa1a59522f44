"""Running a study through lm-eval: each cell once, in lm-eval's layout; a failed cell does not stop the others."""

from __future__ import annotations

import json

import pytest

from fixtures.study import finished_dirs, write_config
from lm_eval_bias.cli import main
from lm_eval_bias.study import load_study
from lm_eval_bias.study.cell import TMP_DIR


@pytest.fixture
def data_dir(crows_pairs_fixture_csv, monkeypatch):
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", crows_pairs_fixture_csv)
    return crows_pairs_fixture_csv


def test_study_runs_each_cell_once_in_lm_eval_layout(tiny_gpt2_dir, data_dir, tmp_path, capsys, monkeypatch):
    config = write_config(tmp_path, [{"id": tiny_gpt2_dir, "name": "tiny-gpt2"}])
    loads = iter([(0.25, 0.5, 0.75), (1.0, 1.25, 1.5), (2.0, 2.25, 2.5), (3.0, 3.25, 3.5)])
    monkeypatch.setattr("lm_eval_bias.study.cell.os.getloadavg", lambda: next(loads))
    assert main(["study", str(config), "--no-progress"]) == 0
    assert "2 done, 0 skipped" in capsys.readouterr().out
    out = tmp_path / "out"
    cells = finished_dirs(out)
    study = load_study(config)
    assert [p.name for p in cells] == sorted(c.hash for c in study.cells)
    starts_and_ends = []
    for folder in cells:
        record = json.loads((folder / "cell.json").read_text())
        assert record["labels"]["model"] == "tiny-gpt2" and record["hash"] == folder.name
        starts_and_ends.append((record["load"]["start"], record["load"]["end"]))
        results = list(folder.glob("*/results_*.json"))
        assert len(results) == 1
        data = json.loads(results[0].read_text())
        assert "stereotype_score,none" in data["results"]["crows_pairs_bias"]
        assert len(list(results[0].parent.glob("samples_crows_pairs_bias_*.jsonl"))) == 9
    # each cell's load averages as it started and ended, the cells one after the other
    assert sorted(starts_and_ends) == [([0.25, 0.5, 0.75], [1.0, 1.25, 1.5]), ([2.0, 2.25, 2.5], [3.0, 3.25, 3.5])]
    assert main(["study", str(config), "--no-progress"]) == 0
    assert "0 done, 2 skipped" in capsys.readouterr().out
    assert finished_dirs(out) == cells and not list((out / TMP_DIR).glob("*"))


def test_failed_cell_does_not_stop_the_others(tiny_gpt2_dir, data_dir, tmp_path, capsys):
    config = write_config(
        tmp_path,
        [{"id": str(tmp_path / "no-such-model"), "name": "missing"}, {"id": tiny_gpt2_dir, "name": "tiny-gpt2"}],
        compressions=["none"],
    )
    assert main(["study", str(config), "--no-progress"]) == 1
    report = capsys.readouterr().out
    assert "1 done, 0 skipped" in report and "1 failed" in report and "missing @ main" in report
    assert len(finished_dirs(tmp_path / "out")) == 1
    assert len(list((tmp_path / "out" / ".failed").glob("*.log"))) == 1
