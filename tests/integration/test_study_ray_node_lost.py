"""A Ray cluster loses a worker node mid-grid: the grid still finishes, every cell once, as a local run.

A head (no CPUs) and two worker nodes (one CPU each) run on this machine, started with `ray start`; the study
runs through the CLI, `lm-eval-bias study --executor ray --address HEAD`. As soon as a cell is being written
(its folder under OUTPUT_DIR/.tmp/ names the Ray worker's process), every process of the node running it is
killed with SIGKILL. Ray runs that cell again on the other node; the half-written attempt never counts.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixtures.study import assert_same_cells, finished_dirs, write_config
from lm_eval_bias.study import LocalExecutor, load_study, run_study
from lm_eval_bias.study.cell import TMP_DIR

pytest.importorskip("ray", reason="Ray is optional: pip install ray")
pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds a node's processes in /proc")
from fixtures.ray_cluster import alive, start_cluster  # noqa: E402

STUDY_TIMEOUT_S = 420


@pytest.fixture
def cluster():
    ray_cluster = start_cluster(workers=2)
    yield ray_cluster
    ray_cluster.stop()


def _wait_for_a_cell_on_a_worker(out: Path, cluster, driver: subprocess.Popen):
    """(the temporary folder of a cell being written, the worker node writing it)."""
    deadline = time.monotonic() + STUDY_TIMEOUT_S
    while time.monotonic() < deadline and driver.poll() is None:
        for tmp in sorted((out / TMP_DIR).glob("*")) if (out / TMP_DIR).is_dir() else []:
            node = cluster.worker_of(int(tmp.name.split(".")[2]))  # HASH.HOST.PID.RANDOM
            if node is not None:
                return tmp, node
        time.sleep(0.05)
    raise AssertionError("no cell started on a worker node")


@pytest.mark.cpu_token_floor  # Ray workers do not see conftest's patch: the local run batches as in production too
def test_a_worker_node_lost_mid_cell(tiny_gpt2_dir, crows_pairs_fixture_csv, tmp_path, monkeypatch, cluster):
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", crows_pairs_fixture_csv)
    config = write_config(tmp_path, [{"id": tiny_gpt2_dir, "name": "tiny-gpt2"}])  # none, dynamic_int8
    local = run_study(load_study(config, output_dir=tmp_path / "local"), LocalExecutor(), progress=False)
    assert [o.status for o in local.outcomes] == ["done", "done"]

    out = tmp_path / "out"
    env = {**cluster.env, "LM_EVAL_BIAS_DATA_DIR": crows_pairs_fixture_csv}
    command = [sys.executable, "-m", "lm_eval_bias.cli", "study", str(config), "--executor", "ray"]
    command += ["--address", cluster.address, "--no-progress", "--skip-task-check"]
    with (tmp_path / "driver.out").open("w") as stdout, (tmp_path / "driver.err").open("w") as stderr:
        driver = subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr)
    try:
        tmp, node = _wait_for_a_cell_on_a_worker(out, cluster, driver)
        cluster.lose(node)
        lost_pid = int(tmp.name.split(".")[2])
        assert tmp.is_dir() and not alive(lost_pid)  # killed while its cell was being written
        status = driver.wait(timeout=STUDY_TIMEOUT_S)
    finally:
        if driver.poll() is None:
            driver.kill()
    report = (tmp_path / "driver.out").read_text()
    assert status == 0, report + (tmp_path / "driver.err").read_text()[-3000:]
    assert "study tiny: 2 cells: 2 done, 0 skipped (already finished), 0 failed" in report

    hashes = sorted(cell.hash for cell in load_study(config).cells)
    assert [folder.name for folder in finished_dirs(out)] == hashes  # the lost cell too, finished elsewhere
    assert tmp.name.split(".")[0] in hashes
    for folder in finished_dirs(out):
        assert len(list(folder.glob("*/results_*.json"))) == 1  # one attempt committed per cell
    assert not list((out / TMP_DIR).iterdir())  # the lost attempt's half-written folder is gone
    assert not (out / ".damaged").exists() and not (out / ".failed").exists()
    assert_same_cells(tmp_path / "local", out)
