"""A study killed with SIGKILL mid-cell (in a subprocess) resumes: the half-written cell is redone."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from fixtures.study import finished_dirs, write_config
from lm_eval_bias.study import LocalExecutor, load_study, run_study
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


def test_resume_after_kill_mid_cell(tiny_gpt2_dir, data_dir, tmp_path):
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
    summary = run_study(study, LocalExecutor(), progress=False)
    assert [o.status for o in summary.outcomes] == ["done"]
    assert [p.name for p in finished_dirs(out)] == [study.cells[0].hash]
    assert not list((out / TMP_DIR).iterdir())  # the dead run's leftovers are gone
