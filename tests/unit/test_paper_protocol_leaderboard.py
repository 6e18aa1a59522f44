"""The leaderboard refuses to pair runs made under different protocols or StereoSet splits."""

from __future__ import annotations

import json

import pytest

from fixtures.results import CROWS, RECORDS, _arc, _crows, _write
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


def _split_cell(folder, compression: str, crows_protocol: str, start: int) -> None:
    """One cell as two runs, as a study's two task entries write it: CrowS-Pairs under `crows_protocol`,
    ARC (no protocol recorded: default) in a run of its own."""
    labels = {"model": "m", "revision": "main", "compression": compression}
    prefs = [1] * 12 if compression == "none" else [0] * 2 + [1] * 10
    for offset, (part, configs) in enumerate(
        (
            (_crows(prefs), {leaf: {"metadata": {"protocol": crows_protocol}} for leaf in CROWS}),
            (_arc([1, 0, 1, 1, 0, 1]), {"arc_easy": {"metadata": {"version": 1.0}}}),
        )
    ):
        cell = folder / f"{compression}-{offset}"
        record = {"hash": cell.name, "labels": labels, "cell": {}}
        quantization = RECORDS[compression]
        _write(
            cell,
            f"2025-01-01T00-00-{start + offset:02d}.000000",
            "quantized_hf",
            "pretrained=m",
            [part],
            quantization,
            record,
        )
        path = next(cell.glob("*/results_*.json"))
        data = json.loads(path.read_text())
        data["configs"] = configs
        path.write_text(json.dumps(data))


def test_runs_sharing_no_task_are_not_compared_for_their_protocol(tmp_path):
    """A cell whose CrowS-Pairs ran under the paper protocol and whose ARC ran in another run (default):
    its baseline's runs are checked task by task, so only a task both ran under different protocols refuses."""
    _split_cell(tmp_path / "ok", "none", "paper", 0)
    _split_cell(tmp_path / "ok", "dynamic_int8", "paper", 2)
    wide = build_leaderboard(load_runs(tmp_path / "ok")).wide().set_index("compression")
    assert wide.loc["dynamic_int8", "crows_pairs_bias/stereotype_score p_value"] == pytest.approx(0.5)  # 2 down
    assert wide.loc["dynamic_int8", "arc_easy/acc_norm baseline"] == "m · main · none"
    _split_cell(tmp_path / "mixed", "none", "paper", 0)
    _split_cell(tmp_path / "mixed", "dynamic_int8", "default", 2)
    with pytest.raises(ValueError, match=r"protocol default vs protocol paper"):
        build_leaderboard(load_runs(tmp_path / "mixed"))
