"""A study killed with SIGKILL mid-cell (in a subprocess) resumes: the half-written cell is redone, from the
responses the killed run had scored (lm-eval's response cache, ``study.resume``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fixtures.study import finished_dirs, write_config
from lm_eval_bias.model_wrappers.quantized_hf import QuantizedHFLM
from lm_eval_bias.study import LocalExecutor, load_study, resume, run_study
from lm_eval_bias.study.cell import TMP_DIR


@pytest.fixture
def data_dir(crows_pairs_fixture_csv, monkeypatch):
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", crows_pairs_fixture_csv)
    return crows_pairs_fixture_csv


KILLER = textwrap.dedent("""
    import os, signal, sys
    from lm_eval_bias.study import cell as cell_module
    def kill_before_commit(folder, *args, **kwargs):
        (folder / "cell.json").write_text("{}")     # everything written, only the rename missing
        os.kill(os.getpid(), signal.SIGKILL)
    cell_module.write_cell_record = kill_before_commit
    from lm_eval_bias.cli import main
    sys.exit(main(["study", sys.argv[1], "--no-progress", "--skip-task-check"]))
""")


def test_resume_after_kill_mid_cell(tiny_gpt2_dir, data_dir, tmp_path, monkeypatch):
    config = write_config(tmp_path, [{"id": tiny_gpt2_dir, "name": "tiny-gpt2"}], compressions=["none"])
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, str(config)],
        capture_output=True,
        text=True,
        env={**os.environ, "LM_EVAL_BIAS_DATA_DIR": data_dir},
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    out = tmp_path / "out"
    leftovers = list((out / TMP_DIR).iterdir())
    assert len(leftovers) == 1 and list(leftovers[0].glob("*/results_*.json"))  # written, never committed
    assert finished_dirs(out) == []
    study = load_study(config)
    cache = resume.cache_folder(out, study.cells[0].hash)
    assert (cache / "responses_rank0.db").is_file()  # the killed run's responses, kept for the next

    # the rerun takes every CrowS-Pairs response from the killed run's: it scores nothing
    def no_scoring(*args, **kwargs):
        raise AssertionError("a response the killed run had scored was scored again")

    scoring = QuantizedHFLM._loglikelihood_tokens
    monkeypatch.setattr(QuantizedHFLM, "_loglikelihood_tokens", no_scoring)
    summary = run_study(study, LocalExecutor(), progress=False)
    assert [o.status for o in summary.outcomes] == ["done"], summary.report()
    assert [p.name for p in finished_dirs(out)] == [study.cells[0].hash]
    assert not list((out / TMP_DIR).iterdir())  # the dead run's leftovers are gone
    assert not cache.exists()  # and its responses, once the cell is finished
    record = json.loads((finished_dirs(out)[0] / "cell.json").read_text())
    assert len(record["attempts"]) == 2 and record["attempts"][0][0] <= record["attempts"][1][0]
    assert record["seconds"] == pytest.approx(sum(end - start for start, end in record["attempts"]), abs=0.2)

    # the same results as a run never cut off
    monkeypatch.setattr(QuantizedHFLM, "_loglikelihood_tokens", scoring)
    fresh = load_study(config)
    fresh.output_dir = tmp_path / "fresh"
    run_study(fresh, LocalExecutor(), progress=False)
    (want,) = (tmp_path / "fresh").glob("*/*/results_*.json")
    (got,) = out.glob("*/*/results_*.json")
    want, got = (json.loads(path.read_text())["results"]["crows_pairs_bias"] for path in (want, got))
    assert got["stereotype_score,none"] == want["stereotype_score,none"]
    # the killed run scored in another process: its log-probabilities may differ in the last bits
    for metric in ("sent_more_score,none", "sent_less_score,none", "perplexity,none"):
        assert got[metric] == pytest.approx(want[metric], rel=1e-6), metric


def _snapshot(folders) -> dict:
    """Every file of the folders: (size, modification time in ns, SHA-256)."""
    import hashlib

    return {
        path: (path.stat().st_size, path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
        for folder in folders
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_a_task_entry_added_to_a_finished_grid_runs_only_the_new_cells(tiny_gpt2_dir, data_env, tmp_path, capsys):
    """A finished grid gains a second task entry: only the new cells run, the finished cells' folders are left
    as they were, and each compression's two cells read as one run in the leaderboard."""
    import yaml

    from lm_eval_bias.cli import main
    from lm_eval_bias.leaderboard import build_leaderboard, load_runs

    config = write_config(tmp_path, [{"id": tiny_gpt2_dir, "name": "tiny-gpt2"}])  # none, dynamic_int8
    assert main(["study", str(config), "--no-progress", "--skip-task-check"]) == 0
    assert "2 done, 0 skipped" in capsys.readouterr().out
    out = tmp_path / "out"
    old = finished_dirs(out)
    before = _snapshot(old)

    grid = yaml.safe_load(config.read_text())
    grid["tasks"].append({"task": ["bbq_bias_age"], "limit": 8})
    config.write_text(yaml.safe_dump(grid), encoding="utf-8")
    assert main(["study", str(config), "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert "4 cells: 2 finished (kept as they are), 2 to run" in dry
    assert (
        "  tasks crows_pairs_bias: 2 finished, 0 to run" in dry and "  tasks bbq_bias_age: 0 finished, 2 to run" in dry
    )
    assert [line.split()[0] for line in dry.splitlines()[:4]] == ["finished", "to", "finished", "to"]  # per compression

    assert main(["study", str(config), "--no-progress", "--skip-task-check"]) == 0
    assert "4 cells: 2 done, 2 skipped" in capsys.readouterr().out
    assert _snapshot(old) == before  # not rewritten, not touched
    new = [folder for folder in finished_dirs(out) if folder not in old]
    assert len(new) == 2
    for folder in new:
        (results,) = folder.glob("*/results_*.json")
        assert list(json.loads(results.read_text())["results"]) == ["bbq_bias_age"]

    board = build_leaderboard(load_runs(out))
    wide = board.wide().set_index("compression")
    assert list(wide.index) == ["none", "dynamic_int8"]  # one row per compression, both cells in it
    assert {"crows_pairs_bias/stereotype_score", "bbq_bias_age/bias_disambig"} <= set(board.columns)
    int8 = wide.loc["dynamic_int8"]
    assert int8["crows_pairs_bias/stereotype_score baseline"] == "tiny-gpt2 · main · none"
    assert int8["bbq_bias_age/acc_disambig test"] == "McNemar exact"  # paired with the baseline's BBQ cell
    # capability judged on the measures of both cells
    assert not np.isnan(int8["crows_pairs_bias/perplexity ratio"]) and not np.isnan(
        int8["bbq_bias_age/acc_disambig change"]
    )
