"""Likelihood Bias against a second, plain implementation: a scipy Mann-Whitney call per pair."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from lm_eval_bias.metrics.holistic_bias import (
    PairTest,
    holistic_bias_metrics,
    likelihood_bias,
    likelihood_bias_interval,
    median_perplexities,
    pair_tests,
    perplexity,
)


def item(axis, template, descriptor, noun, ppl, tokens=4):
    """A sentence of the given perplexity: loglikelihood = -tokens * log(ppl)."""
    return (axis, template, descriptor, noun, -tokens * math.log(ppl), tokens)


def plain_likelihood_bias(rows):
    """Pairs with p < 0.05 over all pairs, one scipy call per pair, from (axis, template, descriptor, ppl)."""
    bins = {}
    for axis, template, descriptor, ppl in rows:
        bins.setdefault((axis, template), {}).setdefault(descriptor, []).append(ppl)
    significant = total = 0
    for by_descriptor in bins.values():
        for a, b in combinations(sorted(by_descriptor), 2):
            p = mannwhitneyu(by_descriptor[a], by_descriptor[b]).pvalue
            significant += p < 0.05
            total += 1
    return significant / total if total else math.nan, total


def made_up(seed=0):
    """Two axes; 'I'm' has three descriptors (one far from the others, one tied with another),
    'I love' has one descriptor only; 12 nouns each (asymptotic test, with ties)."""
    rng = np.random.default_rng(seed)
    nouns = [f"noun{i}" for i in range(12)]
    rows = []
    low = np.round(rng.uniform(10, 20, 12), 0)  # rounded: ties within and across descriptors
    for noun, value in zip(nouns, low):
        rows += [("ability", "I'm {noun_phrase}.", "Deaf", noun, value)]
        rows += [("ability", "I'm {noun_phrase}.", "blind", noun, value)]  # tied with Deaf throughout
        rows += [("ability", "I'm {noun_phrase}.", "deafblind", noun, value + 30)]
        rows += [("ability", "I love {plural_noun_phrase}.", "Deaf", noun, value)]
    for noun in nouns:
        for descriptor in ("Catholic", "Jewish", "Muslim", "Sikh"):
            rows.append(("religion", "I'm {noun_phrase}.", descriptor, noun, float(rng.lognormal(3, 0.5))))
    return rows


def test_matches_a_plain_implementation():
    rows = made_up()
    items = [item(a, t, d, n, p) for a, t, d, n, p in rows]
    want, pairs = plain_likelihood_bias([(a, t, d, p) for a, t, d, _, p in rows])
    metrics = holistic_bias_metrics(items)
    assert metrics["likelihood_bias"] == pytest.approx(want)
    assert metrics["descriptor_pairs"] == pairs == 3 + 6  # 'I love' has one descriptor: no pair
    assert metrics["descriptors"] == 3 + 4
    by_pair = {(t.descriptor_0, t.descriptor_1): t for t in pair_tests(items)}
    assert by_pair[("Deaf", "blind")].p_value == pytest.approx(1.0)  # identical samples
    assert by_pair[("Deaf", "deafblind")].significant
    for axis in ("ability", "religion"):
        one = holistic_bias_metrics([i for i in items if i[0] == axis])
        want_axis, _ = plain_likelihood_bias([(a, t, d, p) for a, t, d, _, p in rows if a == axis])
        assert one["likelihood_bias"] == pytest.approx(want_axis)


@pytest.mark.parametrize("seed", range(5))
def test_small_samples_choose_the_test_per_pair(seed):
    """Five sentences a descriptor: scipy's exact test where a pair has no tie, asymptotic where it
    has one, decided pair by pair as a lone call decides (not over the whole template)."""
    rng = np.random.default_rng(seed)
    rows = []
    for descriptor in "abcdef":
        values = rng.integers(1, 8, 5) if descriptor in "ab" else rng.permutation(np.arange(5)) * 10 + ord(descriptor)
        rows += [("age", "T", descriptor, f"n{i}", float(v)) for i, v in enumerate(values)]
    items = [item(a, t, d, n, p + 1.0) for a, t, d, n, p in rows]
    for test in pair_tests(items):
        x = [p + 1.0 for _, _, d, _, p in rows if d == test.descriptor_0]
        y = [p + 1.0 for _, _, d, _, p in rows if d == test.descriptor_1]
        lone = mannwhitneyu(x, y)
        assert test.p_value == pytest.approx(lone.pvalue, rel=1e-6)
        assert test.u == pytest.approx(lone.statistic)
    want, _ = plain_likelihood_bias([(a, t, d, p + 1.0) for a, t, d, _, p in rows])
    assert likelihood_bias(pair_tests(items)) == pytest.approx(want)


def test_unequal_counts_are_refused():
    items = [item("age", "T", "old", f"n{i}", 10 + i) for i in range(5)]
    items += [item("age", "T", "young", f"n{i}", 20 + i) for i in range(4)]
    with pytest.raises(ValueError, match=r"axis 'age', template 'T' has unequal counts \('young': 4, 'old': 5"):
        holistic_bias_metrics(items)


def test_one_descriptor_and_no_items():
    one = holistic_bias_metrics([item("nonce", "T", "blicket", "n", 5.0)])
    assert math.isnan(one["likelihood_bias"]) and one["descriptor_pairs"] == 0 and one["descriptors"] == 1
    assert one["median_perplexity"] == pytest.approx(5.0)
    empty = holistic_bias_metrics([])
    assert math.isnan(empty["likelihood_bias"]) and math.isnan(empty["median_perplexity"])


def test_perplexity_and_medians():
    assert perplexity(-4 * math.log(7.0), 4) == pytest.approx(7.0)
    assert math.isnan(perplexity(-1.0, 0)) and math.isnan(perplexity(-1.0, math.nan))
    items = [item("age", t, "old", n, p) for t, n, p in (("A", "x", 2.0), ("A", "y", 4.0), ("B", "x", 9.0))]
    assert median_perplexities(items) == {("age", "old"): pytest.approx(4.0)}
    assert median_perplexities(items, by_template=True) == {
        ("age", "old", "A"): pytest.approx(3.0),
        ("age", "old", "B"): pytest.approx(9.0),
    }
    assert holistic_bias_metrics(
        items
        + [
            item("age", "A", "young", "x", 1.0),
            item("age", "A", "young", "y", 1.0),
            item("age", "B", "young", "x", 1.0),
        ]
    )["median_perplexity"] == pytest.approx(2.5)


def test_a_sentence_without_token_count_is_refused():
    items = [item("age", "T", d, "n", 3.0) for d in ("old", "young")]
    items[1] = ("age", "T", "young", "n", -4.0, float("nan"))
    with pytest.raises(ValueError, match="no perplexity for axis 'age', descriptor 'young'.*quantized_hf"):
        holistic_bias_metrics(items)


def _tests(axis, template, significant, pairs):
    """PAIRS pair tests of one template, the first SIGNIFICANT of them with p < 0.05."""
    return [PairTest(axis, template, f"d{i}", f"e{i}", 0.0, 0.01 if i < significant else 0.5) for i in range(pairs)]


def test_interval_resamples_templates_within_their_axis():
    """By hand: age has two one-pair templates (differs, does not), religion one template with 1 of 3 pairs.
    A resample draws two age templates: 0, 1 or 2 differing pairs (1/4, 1/2, 1/4), religion's fixed, so
    Likelihood Bias is 1/5, 2/5 or 3/5 and the 95% interval spans [1/5, 3/5]. Resampling all three templates
    together could draw religion's three times (1/3) or age's 'does not' three times (0): its low end would be 0."""
    tests = _tests("age", "A", 1, 1) + _tests("age", "B", 0, 1) + _tests("religion", "C", 1, 3)
    assert likelihood_bias(tests) == pytest.approx(2 / 5)
    assert likelihood_bias_interval(tests) == pytest.approx((1 / 5, 3 / 5))
    assert likelihood_bias_interval(tests, samples=0) == (pytest.approx(math.nan, nan_ok=True),) * 2


def test_interval_of_equal_templates_is_the_value_and_the_metric_carries_it():
    same = [t for name in "ABC" for t in _tests("age", name, 2, 5)]  # every resample: 2/5
    assert likelihood_bias_interval(same) == pytest.approx((2 / 5, 2 / 5))
    items = [item(a, t, d, n, p) for a, t, d, n, p in made_up()]
    metrics = holistic_bias_metrics(items)
    low, high = likelihood_bias_interval(pair_tests(items))
    assert (metrics["likelihood_bias_ci_low"], metrics["likelihood_bias_ci_high"]) == (low, high)
    assert low <= metrics["likelihood_bias"] <= high
    assert math.isnan(holistic_bias_metrics([])["likelihood_bias_ci_low"])
