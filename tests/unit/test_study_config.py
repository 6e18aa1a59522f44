"""Study configs: expansion, errors and hashing (running a study: harness/test_study_run.py,
resuming after a kill -9: integration/test_study_resume.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lm_eval_bias.study import StudyConfigError, expand_revisions, expand_study
from lm_eval_bias.study.cell import Cell

GRID = {
    "name": "grid",
    "output_dir": "out",
    "models": [
        {"id": "org/model-70m", "name": "m70"},
        {"id": "org/model-160m", "name": "m160", "revisions": ["step5"]},
    ],
    "revisions": "step1000..step15000:7000",
    "compressions": ["none", {"quantization": "rtn", "bits": [8, 4], "group_size": 128}],
    "tasks": ["crows_pairs_bias", {"task": "lambada_openai", "limit": 50}],
    "limit": 10,
}


# ------------------------------------------------------------------ expansion


def test_revision_ranges_lists_and_default():
    paper = expand_revisions("step1000..step143000:7000")
    assert len(paper) == 21 and paper[0] == "step1000" and paper[-1] == "step141000"
    assert expand_revisions("step0..step14:7") == ["step0", "step7", "step14"]  # stop on the grid is included
    assert expand_revisions(["main", "step1..3:1", "step2"]) == ["main", "step1", "step2", "step3"]
    assert expand_revisions(None) == [None]
    with pytest.raises(StudyConfigError, match="range"):
        expand_revisions("step1..rev9:1")


def test_grid_is_the_product_of_models_revisions_compressions_tasks():
    study = expand_study(GRID)
    # m70: 3 revisions (step1000, step8000, step15000), m160: its own 1; 3 compressions; 2 tasks
    assert len(study.cells) == (3 + 1) * 3 * 2
    assert {c.compression_name for c in study.cells} == {
        "none",
        "rtn(bits=8,group_size=128)",
        "rtn(bits=4,group_size=128)",
    }
    assert {c.revision for c in study.cells if c.name == "m70"} == {"step1000", "step8000", "step15000"}
    lambada = [c for c in study.cells if c.task == "lambada_openai"]
    assert {c.limit for c in lambada} == {50} and {c.limit for c in study.cells if c.task != "lambada_openai"} == {10}
    rtn4 = next(c for c in study.cells if c.compression_name == "rtn(bits=4,group_size=128)")
    assert rtn4.model_args_for_harness() == {
        "pretrained": "org/model-70m",
        "quantization": "rtn",
        "bits": 4,
        "group_size": 128,
        "revision": "step1000",
    }
    assert len({c.hash for c in study.cells}) == len(study.cells)


def test_a_model_with_its_own_compressions_replaces_the_default_list():
    # a distilled student evaluated as it is, beside a teacher under every compression of the grid
    raw = {
        **GRID,
        "models": [{"id": "org/teacher", "name": "t"}, {"id": "s", "teacher": "t", "compressions": ["none"]}],
    }
    study = expand_study(raw)
    assert {c.compression_name for c in study.cells if c.name == "s"} == {"none"}
    assert len([c for c in study.cells if c.name == "s"]) == 3 * 2  # its 3 revisions (the default) x 2 tasks
    assert len([c for c in study.cells if c.name == "t"]) == 3 * 3 * 2
    # the teacher's cells are those of a config without the student
    alone = expand_study({**GRID, "models": [{"id": "org/teacher", "name": "t"}]})
    assert {c.hash for c in study.cells if c.name == "t"} == {c.hash for c in alone.cells}


def test_env_expansion_and_named_compressions(monkeypatch):
    monkeypatch.setenv("MODEL_DIR", "/models/gemma")
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    raw = {
        "models": [{"id": "${MODEL_DIR}", "name": "${NOT_SET_ANYWHERE:-gemma}"}],
        "compressions": [{"quantization": "rtn", "bits": [4, 3], "name": "rtn-{bits}bit"}],
        "tasks": ["t"],
    }
    study = expand_study(raw)
    assert {c.model for c in study.cells} == {"/models/gemma"} and {c.name for c in study.cells} == {"gemma"}
    assert [c.compression_name for c in study.cells] == ["rtn-4bit", "rtn-3bit"]
    raw["models"][0]["id"] = "${NOT_SET_ANYWHERE}"
    with pytest.raises(StudyConfigError, match="NOT_SET_ANYWHERE is not set"):
        expand_study(raw)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"compressions": [{"quantization": "rtn", "bitz": 4}]}, "does not take bitz"),
        ({"compressions": ["int3_magic"]}, "unknown quantization"),
        ({"models": [{"id": "a", "teacher": "nobody"}]}, "teacher 'nobody'"),
        ({"modles": []}, "unknown top-level keys"),
        ({"tasks": []}, "no tasks"),
        ({"compressions": []}, r"^compressions: the config lists no compressions"),
        ({"models": [{"id": "a", "compressions": []}]}, r"models\[0\]\.compressions: the config lists no compressions"),
    ],
)
def test_config_errors_name_the_entry(change, message):
    with pytest.raises(StudyConfigError, match=message):
        expand_study({**GRID, **change})


# ------------------------------------------------------------------ hashing

PINNED = Cell(
    model="org/m",
    name="m",
    revision="step1000",
    compression_name="none",
    compression={"quantization": "none"},
    task="crows_pairs_bias",
)


def test_hash_is_stable_across_processes_and_releases():
    code = (
        "from lm_eval_bias.study.cell import Cell; print(Cell(model='org/m', name='m', revision='step1000', "
        "compression_name='none', compression={'quantization': 'none'}, task='crows_pairs_bias').hash)"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert other.stdout.strip() == PINNED.hash
    # pinned: a changed hash would orphan every finished cell of every study
    assert PINNED.hash == "15f7be49d7056cd1"


@pytest.mark.parametrize(
    "field, value",
    [
        ("model", "org/other"),
        ("name", "m2"),
        ("revision", "step2000"),
        ("revision", None),
        ("compression_name", "fp32"),
        ("compression", {"quantization": "dynamic_int8"}),
        ("task", "stereoset_bias"),
        ("model_type", "hf"),
        ("model_args", {"dtype": "float16"}),
        ("teacher", "t"),
        ("size", 7e7),
        ("batch_size", 8),
        ("device", "cuda"),
        ("limit", 5),
        ("num_fewshot", 0),
        ("bootstrap_iters", 10),
        ("metadata", {"sentence_score": "sum"}),
    ],
)
def test_hash_differs_when_any_setting_differs(field, value):
    data = {k: v for k, v in PINNED.settings().items() if k != "cell_format"}
    changed = Cell(**{**data, field: value})
    assert changed.hash != PINNED.hash


def test_hash_ignores_where_a_cell_runs():
    data = {k: v for k, v in PINNED.settings().items() if k != "cell_format"}
    assert Cell(**data, resources={"num_gpus": 1}).hash == PINNED.hash
