"""What groups read from their members goes through what lm-eval hands Group.aggregate, and each
shared fact (the model table, the pooled-ratio table) is written once.

The group functions are called on hand-made groups (no harness run); values are worked out by hand.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import tomllib
import yaml

from lm_eval_bias import plugin
from lm_eval_bias.catalog import MODELS, with_our_tasks
from lm_eval_bias.metrics.crows_pairs import SUBSET_METRICS
from lm_eval_bias.metrics.stereoset import ClusterMetric, stereoset_metrics

REPO = Path(__file__).resolve().parents[2]


def _group(metadata, names):
    return SimpleNamespace(metadata=metadata, get_all_tasks=lambda: [SimpleNamespace(task_name=n) for n in names])


def _stereoset_utils():
    spec = importlib.util.spec_from_file_location("stereoset_utils", REPO / "tasks" / "stereoset_bias" / "utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------ the model table


def test_pyproject_entry_points_list_the_model_table():
    entry_points = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    assert entry_points["lm_eval.models"] == MODELS
    assert plugin.MODELS is MODELS  # the plugin registers the same table


def test_with_our_tasks_puts_our_folder_first_once(tmp_path):
    ours = with_our_tasks()
    assert len(ours) == 1 and (Path(ours[0]) / "crows_pairs_bias" / "crows_pairs_bias.yaml").is_file()
    assert with_our_tasks([str(tmp_path), ours[0]]) == [ours[0], str(tmp_path)]
    assert with_our_tasks(str(tmp_path)) == [ours[0], str(tmp_path)]


# ------------------------------------------------------- CrowS-Pairs pooled ratios


def test_crows_pairs_group_names_the_metrics_table():
    metadata = yaml.safe_load((REPO / "tasks" / "crows_pairs_bias" / "crows_pairs_bias.yaml").read_text())["metadata"]
    group = _group(metadata, [])
    assert plugin._pooled_ratio_metrics(group) == {
        "stereo_score": "stereo_pairs",
        "antistereo_score": "antistereo_pairs",
    }
    assert plugin._pooled_ratio_metrics(group) == SUBSET_METRICS


def test_pooling_by_table_name_equals_pooling_by_mapping():
    leaves = {
        "a": {
            "stereo_score,none": 60.0,
            "stereo_pairs,none": 10.0,
            "antistereo_score,none": 50.0,
            "antistereo_pairs,none": 2.0,
        },
        "b": {
            "stereo_score,none": 40.0,
            "stereo_pairs,none": 30.0,
            "antistereo_score,none": 25.0,
            "antistereo_pairs,none": 4.0,
        },
    }
    named = plugin.pool(
        _group({"pooled_ratio_metrics": "lm_eval_bias.metrics.crows_pairs:SUBSET_METRICS"}, "ab"), leaves, {}
    )
    # (60*10 + 40*30) / 40 and (50*2 + 25*4) / 6, counts summed
    assert named == {
        "stereo_score,none": 45.0,
        "stereo_pairs,none": 40.0,
        "antistereo_score,none": pytest.approx(200 / 6),
        "antistereo_pairs,none": 6.0,
    }
    assert named == plugin.pool(_group({"pooled_ratio_metrics": dict(SUBSET_METRICS)}, "ab"), leaves, {})


# ------------------------------------------------------------ StereoSet's groups


INTRA = [("mother", 1, 2), ("chess player", 0, 1)]
INTER = [("mother", 0, 2), ("mother", 1, 1)]


def test_leaf_values_are_floats_that_carry_their_clusters():
    utils = _stereoset_utils()
    ss = utils.ss(list(INTRA))
    # mother: 1 of 1 pro -> 100; chess player: 0 of 1 -> 0; term mean 50
    assert ss == 50.0 and type(float(ss)) is float
    assert ss.items == tuple(INTRA)
    assert json.dumps({"ss,none": ss}) == json.dumps({"ss,none": 50.0})
    assert utils.lms(list(INTRA)) == pytest.approx((100.0 + 50.0) / 2)


def test_group_recomputes_from_the_items_in_the_leaf_metrics():
    utils = _stereoset_utils()
    task_metrics = {
        "intra": {"sample_len": 2, **{f"{m},none": getattr(utils, m)(list(INTRA)) for m in ("ss", "lms", "icat")}},
        "inter": {"sample_len": 2, **{f"{m},none": getattr(utils, m)(list(INTER)) for m in ("ss", "lms", "icat")}},
        "other": {"sample_len": 9, "ss,none": 0.0},
    }
    group = _group({"aggregate_items_with": "lm_eval_bias.metrics.stereoset:stereoset_metrics"}, ["intra", "inter"])
    result = plugin.aggregate_items(group, task_metrics, {"ss,none": -1.0})
    # mother: pro 1+0+1 of 3, related 2+2+1 of 6; chess player: pro 0 of 1, related 1 of 2
    ss = (100 * 2 / 3 + 0.0) / 2
    lms = (100 * 5 / 6 + 50.0) / 2
    assert result["ss,none"] == pytest.approx(ss)
    assert result["lms,none"] == pytest.approx(lms)
    assert result["icat,none"] == pytest.approx(lms * min(ss, 100 - ss) / 50)
    assert result["ss_micro,none"] == pytest.approx(100 * 2 / 4)
    # the bootstrap interval resamples the clusters in member order, as one list
    expected = stereoset_metrics(INTRA + INTER)
    assert (result["ss_ci_low,none"], result["ss_ci_high,none"]) == (expected["ss_ci_low"], expected["ss_ci_high"])


def test_group_without_items_keeps_its_values():
    group = _group({"aggregate_items_with": "lm_eval_bias.metrics.stereoset:stereoset_metrics"}, ["a"])
    assert plugin.aggregate_items(group, {"a": {"ss,none": 50.0}}, {"ss,none": 50.0}) == {"ss,none": 50.0}
    assert plugin.leaf_items({"ss,none": ClusterMetric(1.0, [("t", 1, 2)])}) == (("t", 1, 2),)
    assert math.isnan(stereoset_metrics([])["ss"])
