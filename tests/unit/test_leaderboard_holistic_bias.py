"""The leaderboard on HolisticBias: Likelihood Bias paired by template (a sign-flip permutation test
over an axis' templates), median perplexity by descriptor, and the descriptors whose rank moved most,
against numbers worked by hand."""

from __future__ import annotations

import math

import pytest

from fixtures.bbq_results import RTN2, lm_eval_doc_hash
from fixtures.results import _write, compression_record
from lm_eval_bias.leaderboard import build_leaderboard, load_runs, render
from lm_eval_bias.leaderboard.holistic_bias import describe_moves, item_values, rank_moves, template_fractions
from lm_eval_bias.leaderboard.paired import paired_test
from lm_eval_bias.metrics.holistic_bias import METRICS, holistic_bias_metrics

TASK = "holistic_bias_religion"
NOUNS = [f"noun{i}" for i in range(10)]
# template -> descriptor -> perplexity offset; within a descriptor the ten nouns give offset + 1..10, so
# equal offsets give identical samples (p = 1) and offsets 100 apart fully separated ones (p < 0.001)
BASE = {"T1": {"a": 0, "b": 0, "c": 100}, "T2": {"a": 0, "b": 0, "c": 0}, "T3": {"a": 0, "b": 0, "c": 0}}
RUN = {"T1": {"a": 0, "b": 0, "c": 100}, "T2": {"a": 0, "b": 100, "c": 200}, "T3": {"a": 0, "b": 0, "c": 100}}
# differing pairs: base T1 2/3, T2 0, T3 0 (LB 2/9); run T1 2/3, T2 3/3, T3 2/3 (LB 7/9)
# per-template differences 0, 1, 2/3: mean 5/9 = the Δ; sign flips of (1, 2/3): |sum| >= 5/3 in 2 of 4: p = 0.5


def _items(design):
    return [
        ("religion", template, d, noun, -4 * math.log(offset + 1 + i), 4)
        for template, offsets in design.items()
        for d, offset in offsets.items()
        for i, noun in enumerate(NOUNS)
    ]


def _part(design):
    items, samples = _items(design), []
    for doc_id, item in enumerate(items):
        doc = {"text": f"{item[1]} {item[2]} {item[3]}", "axis": "religion", "template": item[1], "descriptor": item[2]}
        doc["noun"] = item[3]
        sample = {"doc_id": doc_id, "doc": doc, "doc_hash": lm_eval_doc_hash(doc), "filter": "none"}
        samples.append({**sample, **{name: list(item) for name in METRICS}})
    entry = {"alias": TASK}
    for name, value in holistic_bias_metrics(items).items():
        entry[f"{name},none"], entry[f"{name}_stderr,none"] = value, "N/A"
    return {TASK: entry}, {TASK: samples}, {TASK: []}


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    root = tmp_path_factory.mktemp("holistic_bias")
    none = compression_record("none", "none", {}, 32)
    _write(
        root, "2025-01-01T00-00-00.000000", "quantized_hf", "pretrained=/m/tiny,quantization=none", [_part(BASE)], none
    )
    _write(
        root,
        "2025-01-01T00-00-01.000000",
        "quantized_hf",
        "pretrained=/m/tiny,quantization=rtn,bits=2",
        [_part(RUN)],
        RTN2,
    )
    return build_leaderboard(load_runs(root)).wide().set_index("compression")


def test_template_fractions_by_hand():
    assert template_fractions(_items(BASE)) == pytest.approx(
        {("religion", "T1"): 2 / 3, ("religion", "T2"): 0.0, ("religion", "T3"): 0.0}
    )
    assert holistic_bias_metrics(_items(RUN))["likelihood_bias"] == pytest.approx(7 / 9)


def test_likelihood_bias_delta_is_tested_over_templates(wide):
    row = wide.loc["rtn(bits=2)"]
    assert wide.loc["none", f"{TASK}/likelihood_bias"] == pytest.approx(2 / 9)
    assert row[f"{TASK}/likelihood_bias"] == pytest.approx(7 / 9)
    assert row[f"{TASK}/likelihood_bias delta"] == pytest.approx(5 / 9)
    assert row[f"{TASK}/likelihood_bias test"] == "paired permutation"
    assert row[f"{TASK}/likelihood_bias n_pairs"] == 3
    assert row[f"{TASK}/likelihood_bias p_value"] == pytest.approx(0.5)


def test_median_perplexity_pairs_descriptors(wide):
    row = wide.loc["rtn(bits=2)"]
    assert row[f"{TASK}/median_perplexity n_pairs"] == 3  # descriptors a, b, c


def test_rank_moves_by_hand():
    # one descriptor per perplexity: base ranks a 1, b 2, c 3; run a 3, b 2, c 1
    base = [("x", "T", d, n, -math.log(p), 1) for d, p in (("a", 1.0), ("b", 2.0), ("c", 3.0)) for n in "uv"]
    run = [("x", "T", d, n, -math.log(p), 1) for d, p in (("a", 3.0), ("b", 2.0), ("c", 1.0)) for n in "uv"]
    assert rank_moves(run, base) == [("x", "a", 1, 3, 2), ("x", "c", 3, 1, -2), ("x", "b", 2, 2, 0)]
    assert rank_moves(run, base, top=1) == [("x", "a", 1, 3, 2)]


def test_rank_moves_column(wide):
    # medians over a descriptor's 30 sentences: base a 5.5, b 5.5, c 8; run a 5.5, b 8, c 108: no rank moved
    assert wide.loc["rtn(bits=2)", f"{TASK} rank moves (median perplexity)"] == ""
    assert describe_moves([("x", "a", 1, 3, 2), ("x", "b", 2, 2, 0)]) == "x/a 1→3"


def test_renders_with_its_columns(tmp_path_factory):
    root = tmp_path_factory.mktemp("holistic_bias_render")
    none = compression_record("none", "none", {}, 32)
    _write(
        root, "2025-01-01T00-00-00.000000", "quantized_hf", "pretrained=/m/tiny,quantization=none", [_part(BASE)], none
    )
    _write(
        root,
        "2025-01-01T00-00-01.000000",
        "quantized_hf",
        "pretrained=/m/tiny,quantization=rtn,bits=2",
        [_part(RUN)],
        RTN2,
    )
    board = build_leaderboard(load_runs(root))
    for fmt in ("markdown", "html", "csv", "text"):
        text = render(board.wide(), board.columns, fmt)
        assert "likelihood_bias" in text
    assert "rank moves (median perplexity)" in render(board.wide(), board.columns, "markdown")


def test_group_units_weight_templates_by_their_pairs():
    # two axes of different sizes: religion T1 with 3 descriptors (3 pairs), age T1 with 2 (1 pair)
    # base: religion a-c and b-c differ (2 of 3), age none (0 of 1): pooled 2/4; run: religion 0 of 3,
    # age 1 of 1: pooled 1/4. Unweighted the template differences are -2/3 and +1 (mean +1/6, the
    # wrong sign); weighted by pairs they are 3·(-2/3)·2/4 = -1 and 1·1·2/4 = +0.5, mean -0.25 = the Δ
    def items(religion, age):
        design = {"religion": religion, "age": age}
        return [
            (axis, "T1", d, noun, -4 * math.log(offset + 1 + i), 4)
            for axis, offsets in design.items()
            for d, offset in offsets.items()
            for i, noun in enumerate(NOUNS)
        ]

    def samples_of(records):
        return lambda leaf: [
            {name: list(item) for name in METRICS} for item in records if f"holistic_bias_{item[0]}" == leaf
        ]

    base = items({"a": 0, "b": 0, "c": 100}, {"x": 0, "y": 0})
    run = items({"a": 0, "b": 0, "c": 0}, {"x": 0, "y": 100})
    leaves = ["holistic_bias_religion", "holistic_bias_age"]
    base_units = item_values(leaves, samples_of(base), "likelihood_bias")
    run_units = item_values(leaves, samples_of(run), "likelihood_bias")
    religion, age = ("holistic_bias_religion", "religion", "T1"), ("holistic_bias_age", "age", "T1")
    assert base_units == pytest.approx({religion: 1.0, age: 0.0})
    assert run_units == pytest.approx({religion: 0.0, age: 0.5})
    pooled = holistic_bias_metrics(run)["likelihood_bias"] - holistic_bias_metrics(base)["likelihood_bias"]
    assert pooled == pytest.approx(-0.25)
    result = paired_test(run_units, base_units)
    assert result.mean_difference == pytest.approx(pooled)
    # sign flips of (-1, +0.5): sums -0.5, -1.5, +1.5, +0.5, every one at least |-0.5|
    assert result.p_value == pytest.approx(1.0)
    # one axis alone: its templates' values are their own fractions (equal pair counts)
    assert item_values(leaves[:1], samples_of(base), "likelihood_bias") == pytest.approx({religion: 2 / 3})


def _intervals_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "holistic_bias_intervals.py"
    spec = importlib.util.spec_from_file_location("holistic_bias_intervals", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_intervals_script_recomputes_from_the_samples_and_checks_the_results_file(tmp_path):
    from lm_eval_bias.metrics.holistic_bias import likelihood_bias_interval, pair_tests

    script = _intervals_script()
    none = compression_record("none", "none", {}, 32)
    _write(
        tmp_path,
        "2025-01-01T00-00-00.000000",
        "quantized_hf",
        "pretrained=/m/tiny,quantization=none",
        [_part(RUN)],
        none,
    )
    (run,) = load_runs(tmp_path)
    low, high = likelihood_bias_interval(pair_tests(_items(RUN)))
    assert script.row(run, TASK) == f"| tiny | none | {TASK} | {7 / 9:.3f} [{low:.3f}, {high:.3f}] | 3 | 9 |"

    results, samples, extra = _part(RUN)
    results[TASK]["likelihood_bias,none"] = 0.5  # a results file that disagrees with its own samples
    _write(
        tmp_path,
        "2025-01-01T00-00-01.000000",
        "quantized_hf",
        "pretrained=/m/tiny,quantization=none",
        [(results, samples, extra)],
        none,
    )
    latest = max(load_runs(tmp_path), key=lambda r: r.date)
    with pytest.raises(SystemExit, match=r"0\.777\d* from the samples, 0\.5 in its results file"):
        script.row(latest, TASK)
