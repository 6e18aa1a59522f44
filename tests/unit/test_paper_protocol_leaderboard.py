"""The leaderboard refuses to pair runs made under different protocols or StereoSet splits."""

from __future__ import annotations

import json

import pytest

from fixtures.results import _arc, _write
from lm_eval_bias.leaderboard import build_leaderboard, load_runs
from lm_eval_bias.leaderboard.protocols import conflict, protocols


def _configs(**metadata_by_task):
    return {"configs": {task: {"metadata": metadata} for task, metadata in metadata_by_task.items()}}


def test_protocols_read_from_task_configs_with_old_runs_as_default_and_dev():
    assert protocols({}) == (frozenset(), frozenset())
    old = _configs(crows_pairs_bias_gender={"version": 1.0}, stereoset_bias_intrasentence_race={"version": 1.0})
    assert protocols(old) == (frozenset({"default"}), frozenset({"dev"}))
    paper = _configs(
        crows_pairs_bias_gender={"protocol": "paper"},
        stereoset_bias_intrasentence_race={"protocol": "paper", "stereoset_split": "test"},
    )
    assert protocols(paper) == (frozenset({"paper"}), frozenset({"test"}))
    assert conflict(paper, old) == "protocol paper, StereoSet split test vs protocol default, StereoSet split dev"
    same_protocol_other_split = _configs(
        stereoset_bias_intrasentence_race={"protocol": "paper", "stereoset_split": "dev"}
    )
    assert "split test vs" in conflict(paper, same_protocol_other_split)
    crows_only = _configs(crows_pairs_bias_gender={"protocol": "paper"})
    assert conflict(paper, crows_only) is None  # no StereoSet on one side: nothing to disagree on


def _student_and_teacher(folder, student_metadata, teacher_metadata):
    _write(
        folder,
        "2025-01-01T00-00-00.000000",
        "hf",
        "pretrained=EleutherAI/pythia-410m-deduped,revision=v1",
        [_arc([1, 0, 1, 1, 0, 1])],
    )
    _write(
        folder,
        "2025-01-01T00-00-01.000000",
        "distilled_hf",
        "pretrained=me/student-410m",
        [_arc([0, 0, 1, 0, 0, 1])],
        distillation={"teacher": "EleutherAI/pythia-410m-deduped", "teacher_revision": "v1"},
    )
    for name, metadata in (
        ("EleutherAI__pythia-410m-deduped", teacher_metadata),
        ("me__student-410m", student_metadata),
    ):
        path = next((folder / name).glob("results_*.json"))
        data = json.loads(path.read_text())
        data["configs"] = {"arc_easy": {"metadata": metadata}}
        path.write_text(json.dumps(data))


def test_leaderboard_refuses_runs_of_different_protocols(tmp_path):
    _student_and_teacher(tmp_path, {"protocol": "paper"}, {"version": 1.0})
    with pytest.raises(ValueError, match=r"different protocols \(protocol paper vs protocol default\)"):
        build_leaderboard(load_runs(tmp_path))


def test_leaderboard_pairs_runs_of_the_same_protocol(tmp_path):
    _student_and_teacher(tmp_path, {"protocol": "paper"}, {"protocol": "paper"})
    wide = build_leaderboard(load_runs(tmp_path)).wide()
    assert (wide["arc_easy/acc_norm baseline"] == "EleutherAI/pythia-410m-deduped · v1 · none").any()
