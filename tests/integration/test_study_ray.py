"""The Ray executor on a local Ray: the same results directories as the local executor."""

from __future__ import annotations

import pytest

from fixtures.study import assert_same_cells, tree
from lm_eval_bias.study import LocalExecutor, RayExecutor, expand_study, run_study

ray = pytest.importorskip("ray", reason="Ray is optional: pip install ray")


@pytest.mark.cpu_token_floor  # a Ray worker does not see conftest's patch: both executors batch as in production
def test_ray_and_local_write_the_same_cells(tiny_gpt2_dir, crows_pairs_fixture_csv, tmp_path, monkeypatch):
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", crows_pairs_fixture_csv)
    config = {
        "models": [{"id": tiny_gpt2_dir, "name": "tiny-gpt2"}],
        "compressions": ["dynamic_int8"],
        "tasks": ["crows_pairs_bias"],
        "batch_size": 4,
        "limit": 1,
        "bootstrap_iters": 0,
        "resources": {"num_cpus": 1},
    }
    local = run_study(expand_study(config, output_dir=tmp_path / "local"), LocalExecutor(), progress=False)
    remote = run_study(expand_study(config, output_dir=tmp_path / "ray"), RayExecutor(num_cpus=1), progress=False)
    assert [o.status for o in local.outcomes] == ["done"]
    assert [o.status for o in remote.outcomes] == ["done"], [o.reason for o in remote.outcomes]
    assert len(tree(tmp_path / "local")) == 1 + 1 + 9  # cell.json, results, samples
    assert_same_cells(tmp_path / "local", tmp_path / "ray")
    assert not ray.is_initialized()  # the local Ray it started is shut down


def test_a_cell_asking_for_more_than_the_local_ray_has_fails_alone(
    tiny_gpt2_dir, crows_pairs_fixture_csv, tmp_path, monkeypatch
):
    """A local Ray cannot grow, so a task asking for a GPU it lacks would wait forever: that cell
    fails at once with the reason, and the other cells run."""
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", crows_pairs_fixture_csv)
    config = {
        "models": [
            {"id": tiny_gpt2_dir, "name": "fits"},
            {"id": tiny_gpt2_dir, "name": "wants-gpu", "resources": {"num_gpus": 1}},
            {"id": tiny_gpt2_dir, "name": "wants-cpus", "resources": {"num_cpus": 3}},
        ],
        "tasks": ["crows_pairs_bias_age"],
        "batch_size": 4,
        "limit": 1,
        "bootstrap_iters": 0,
    }
    study = expand_study(config, output_dir=tmp_path / "out")
    summary = run_study(study, RayExecutor(num_cpus=2), progress=False)
    by_model = {o.description.split()[0]: o for o in summary.outcomes}
    assert {name: o.status for name, o in by_model.items()} == {
        "fits": "done",
        "wants-gpu": "failed",
        "wants-cpus": "failed",
    }, by_model
    assert by_model["wants-gpu"].reason == "Ray: the cell asks for 1 GPUs; this local Ray has 0"
    assert by_model["wants-cpus"].reason == "Ray: the cell asks for 3 CPUs; this local Ray has 2"
    assert not ray.is_initialized()
