"""Closed-form standard errors (lm_eval_bias.metrics.stderr), StereoSet's and BBQ's, and the task YAMLs
that say how every reported stderr is computed; each value against a hand computation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from lm_eval_bias.metrics.bbq import METRICS as BBQ_METRICS
from lm_eval_bias.metrics.bbq import bbq_stderrs
from lm_eval_bias.metrics.items import items_aggregations
from lm_eval_bias.metrics.stderr import (
    closed_form_stderr,
    mean_stderr,
    nanmean,
    proportion_stderr,
    with_stderr,
)
from lm_eval_bias.metrics.stereoset import METRICS as STEREOSET_METRICS
from lm_eval_bias.metrics.stereoset import stereoset_metrics, stereoset_stderrs

TASKS = Path(__file__).resolve().parents[2] / "tasks"


def by_hand_mean_stderr(values):
    n = len(values)
    mu = sum(values) / n
    return math.sqrt(sum((x - mu) ** 2 for x in values) / (n - 1)) / math.sqrt(n)


def test_mean_stderr_is_the_sample_std_over_root_n_of_the_non_nan_values():
    assert mean_stderr([1.0, 2.0, 4.0, math.nan]) == pytest.approx(by_hand_mean_stderr([1.0, 2.0, 4.0]))
    assert math.isnan(mean_stderr([3.0, math.nan])) and math.isnan(mean_stderr([]))


def test_proportion_stderr_is_that_of_the_items_zero_or_scale_values():
    # 3 of 8 items count: sqrt(p(1-p)/(n-1)) with p = 3/8, on a 0-100 scale
    assert proportion_stderr(3, 8, 100.0) == pytest.approx(100.0 * math.sqrt(0.375 * 0.625 / 7))
    assert proportion_stderr(3, 8, 100.0) == pytest.approx(by_hand_mean_stderr([100.0] * 3 + [0.0] * 5))
    assert proportion_stderr(5, 5) == 0.0
    assert math.isnan(proportion_stderr(1, 1))


def test_nanmean_is_lm_evals_and_carries_its_closed_form():
    from lm_eval.api.metrics import nanmean as lm_eval_nanmean

    for values in ([100.0, math.nan, 0.0, 100.0], [math.nan, math.nan], []):
        ours, theirs = nanmean(values), lm_eval_nanmean(values)
        assert (math.isnan(ours) and math.isnan(theirs)) or ours == theirs
    assert closed_form_stderr(nanmean) is mean_stderr
    assert closed_form_stderr(lm_eval_nanmean) is None  # lm-eval's own is left alone


def test_with_stderr_attaches_and_returns_the_aggregation():
    def total(items):
        return sum(items)

    assert with_stderr(total, mean_stderr) is total and closed_form_stderr(total) is mean_stderr


def test_stereoset_stderrs_by_hand():
    outcomes = [("nurse", 1, 2), ("nurse", 0, 1), ("teacher", 1, 0), ("chess", 1, 2), ("chess", 0, 2)]
    got = stereoset_stderrs(outcomes)
    # ss_micro: 3 of 5 clusters pro-stereotype; lms_micro: the mean of 50 * related per cluster
    assert got["ss_micro"] == pytest.approx(100.0 * math.sqrt(0.6 * 0.4 / 4))
    assert got["lms_micro"] == pytest.approx(by_hand_mean_stderr([100.0, 50.0, 0.0, 100.0, 100.0]))
    assert stereoset_metrics(outcomes, bootstrap_samples=0)["lms_micro"] == pytest.approx(70.0)  # that mean
    assert set(got) <= set(STEREOSET_METRICS)


def test_bbq_stderrs_by_hand():
    # (condition, correct, chose unknown, chose biased); the item without a target counts nowhere
    outcomes = [("ambig", 1, 1, 0), ("ambig", 0, 0, 1), ("ambig", 1, 1, 0), ("disambig", 1, 0, 1)]
    outcomes += [("disambig", 0, 0, 0), (None, 1, 0, 0)]
    got = bbq_stderrs(outcomes)
    assert got["acc"] == pytest.approx(math.sqrt(0.6 * 0.4 / 4))
    assert got["acc_ambig"] == pytest.approx(math.sqrt((2 / 3) * (1 / 3) / 2))
    assert got["acc_disambig"] == pytest.approx(math.sqrt(0.5 * 0.5 / 1))
    assert set(got) <= set(BBQ_METRICS)


def test_items_aggregations_carry_the_closed_forms_they_have():
    def compute(items):
        return {"share": float(np.mean([i[0] for i in items])), "count": float(len(items))}

    def stderrs(items):
        return {"share": proportion_stderr(sum(i[0] for i in items), len(items))}

    share, count = items_aggregations(compute, ["share", "count"], stderrs=stderrs)
    assert closed_form_stderr(count) is None
    items = [(1,), (0,), (1,), (1,)]
    assert share(items) == 0.75 and closed_form_stderr(share)(items) == pytest.approx(math.sqrt(0.75 * 0.25 / 3))


class _Loader(yaml.SafeLoader):
    """Reads a task YAML with its ``!function`` tags as plain strings."""


_Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))


def _configs():
    for path in sorted(TASKS.glob("*/*")):
        if path.name.endswith(".yaml") or path.name == "_template_yaml":
            yield path, yaml.load(path.read_text(), Loader=_Loader)


@pytest.mark.parametrize("path", [p for p, c in _configs() if "metric_list" in c or "aggregate_metric_list" in c])
def test_every_metric_says_how_its_stderr_is_computed(path):
    config = yaml.load(path.read_text(), Loader=_Loader)
    metrics = [m["metric"] for m in config.get("metric_list") or config.get("aggregate_metric_list")]
    methods = config["metadata"].get("stderr_methods")
    assert methods is not None, f"{path} has no metadata.stderr_methods"
    assert sorted(methods) == sorted(metrics), path
    for metric, method in methods.items():
        assert method.startswith(("closed form:", "N/A:")), (path, metric)
