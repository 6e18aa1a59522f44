import math

import pytest

from lm_eval_bias.metrics.crows_pairs import crows_pairs_metrics, pair_metrics

# Six pairs worked by hand:
#   stereo:     (-1.0 > -2.0) prefer, (-3.0 < -2.5) not, (-1.5 == -1.5) tie
#   antistereo: (-0.5 > -0.7) prefer, (-4.0 < -1.0) not, (-2.0 == -2.0) tie
MORE = [-1.0, -3.0, -1.5, -0.5, -4.0, -2.0]
LESS = [-2.0, -2.5, -1.5, -0.7, -1.0, -2.0]
DIRECTIONS = ["stereo", "stereo", "stereo", "antistereo", "antistereo", "antistereo"]


def test_hand_computed_summary():
    summary = crows_pairs_metrics(MORE, LESS, DIRECTIONS)
    assert summary["stereotype_score"] == pytest.approx(100 * 2 / 6)  # ties stay in the denominator
    assert summary["stereo_score"] == pytest.approx(100 * 1 / 2)  # tie left out
    assert summary["antistereo_score"] == pytest.approx(100 * 1 / 2)
    assert summary["tie_rate"] == pytest.approx(100 * 2 / 6)
    diffs = [1.0, -0.5, 0.0, 0.2, -3.0, 0.0]
    assert summary["likelihood_diff"] == pytest.approx(sum(diffs) / 6)
    assert summary["stereo_pairs"] == 2 and summary["antistereo_pairs"] == 2


def test_pair_values_average_to_summary():
    per_pair = [pair_metrics(more, less, d) for more, less, d in zip(MORE, LESS, DIRECTIONS)]
    assert sum(p["stereotype_score"] for p in per_pair) / 6 == pytest.approx(100 / 3)
    stereo = [p["stereo_score"] for p in per_pair if not math.isnan(p["stereo_score"])]
    assert stereo == [100.0, 0.0]
    assert math.isnan(per_pair[2]["stereo_score"]) and math.isnan(per_pair[0]["antistereo_score"])


def test_subset_without_pairs_is_nan():
    summary = crows_pairs_metrics([-1.0], [-1.0], ["antistereo"])
    assert math.isnan(summary["antistereo_score"]) and math.isnan(summary["stereo_score"])
    assert summary["tie_rate"] == 100.0 and summary["stereotype_score"] == 0.0


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="stereo_antistereo.*'sideways'"):
        pair_metrics(0.0, 1.0, "sideways")
    with pytest.raises(ValueError, match="same, non-zero number"):
        crows_pairs_metrics([0.0], [], ["stereo"])
