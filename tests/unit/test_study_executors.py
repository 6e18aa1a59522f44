"""Choosing the Ray executor where Ray is not installed: a clear error naming the install, from the
class and from the CLI, before any cell runs."""

from __future__ import annotations

import importlib.util

import pytest
import yaml

from lm_eval_bias.cli import main
from lm_eval_bias.study import RayExecutor
from lm_eval_bias.study.executors import ExecutorUnavailable


@pytest.fixture
def without_ray(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a, **k: None if name == "ray" else real(name, *a, **k)
    )


def test_ray_executor_without_ray_names_the_install(without_ray):
    with pytest.raises(ExecutorUnavailable, match=r"--executor ray needs Ray: pip install ray"):
        RayExecutor()


def test_study_cli_without_ray_fails_before_running_a_cell(without_ray, tmp_path, capsys):
    config = tmp_path / "study.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "s",
                "output_dir": str(tmp_path / "out"),
                "models": [{"id": "org/model", "name": "m"}],
                "tasks": ["crows_pairs_bias"],
            }
        )
    )
    status = main(["study", str(config), "--executor", "ray", "--skip-task-check", "--no-progress"])
    assert status == 2
    assert "--executor ray needs Ray: pip install ray" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
