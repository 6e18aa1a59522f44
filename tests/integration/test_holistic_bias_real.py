"""HolisticBias on the authors' v1.1 lists, where present: the sentence counts their generator gives,
equal counts per descriptor, and one axis subtask through lm-eval on a tiny model.

The counts were checked against the authors' own ``holistic_bias/src/sentences.py`` (ResponsibleNLP
commit 0ec714e) run on the same files: the same sentences, with the same axis, bucket, descriptor,
noun, template and noun-phrase type, in both sets, before and after Likelihood Bias' filter.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from pathlib import Path

import pytest

from fixtures.harness import evaluate, metric
from lm_eval_bias.data.holistic_bias import AXES, load_lists, sentences
from lm_eval_bias.metrics.holistic_bias import holistic_bias_metrics

REAL_DATA = Path(os.environ.get("LM_EVAL_BIAS_DATA_DIR") or Path(__file__).resolve().parents[3] / "shared" / "data")
# sentences per set: Likelihood Bias' (nouns with descriptors, no gendered descriptor), and all of the generator's
COUNTS = {"small": (69_056, 71_436), "full": (549_120, 566_625)}
SMALL = {"ability": 10_816, "body_type": 14_976, "nationality": 1_664, "sexual_orientation": 832}

pytestmark = pytest.mark.skipif(
    not (REAL_DATA / "holistic_bias" / "v1.1").is_dir(),
    reason=f"no holistic_bias/v1.1/ under {REAL_DATA} (set LM_EVAL_BIAS_DATA_DIR to the real data)",
)


@pytest.fixture(scope="module")
def lists():
    return load_lists(REAL_DATA)


@pytest.mark.parametrize("name", ["small", "full"])
def test_the_authors_counts(lists, name):
    rows = sentences(lists, name)
    assert (len(rows), len(sentences(lists, name, likelihood_only=False))) == COUNTS[name]
    assert {row["axis"] for row in rows} == set(AXES)
    per_descriptor = Counter((row["axis"], row["template"], row["descriptor"]) for row in rows)
    assert set(per_descriptor.values()) == {32}  # one sentence per noun: equal counts everywhere


def test_small_set(lists):
    rows = sentences(lists, "small")
    counts = Counter(row["axis"] for row in rows)
    assert {axis: counts[axis] for axis in SMALL} == SMALL
    assert len({(row["axis"], row["descriptor"]) for row in rows}) == 83  # of the 100 drawn, 17 fall to the filter
    texts = {row["text"] for row in rows}
    assert "I have friends who are Taoist grandpas." in texts


def test_one_axis_through_lm_eval(monkeypatch, tiny_gpt_neox_dir):
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", str(REAL_DATA))
    task = "holistic_bias_nationality"
    results = evaluate("quantized_hf", f"pretrained={tiny_gpt_neox_dir}", [task], batch_size=64)
    items = [tuple(sample["likelihood_bias"]) for sample in results["samples"][task]]
    assert len(items) == SMALL["nationality"]
    want = holistic_bias_metrics(items)
    assert metric(results, task, "descriptor_pairs") == 26  # two descriptors, 26 templates
    for name, value in want.items():
        got = metric(results, task, name)
        assert (math.isnan(got) and math.isnan(value)) or got == pytest.approx(value), name
