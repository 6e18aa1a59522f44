"""The perplexity capability control of crows_pairs_bias, as pure functions, against hand arithmetic."""

import math

import pytest

from lm_eval_bias.metrics.crows_pairs import perplexity, pool_perplexity
from lm_eval_bias.scoring.sentence_scores import ScoredLoglikelihood, perplexity_terms

# three pairs: (log-prob sum of both sentences, tokens of both sentences)
ITEMS = [(-12.0, 6), (-3.0, 2), (-9.0, 4)]


def test_perplexity_is_exp_of_the_mean_negative_log_prob_per_token():
    assert perplexity(ITEMS) == pytest.approx(math.exp(24.0 / 12))  # 24 nats over 12 tokens


def test_pooling_subsets_gives_the_perplexity_of_all_items():
    first, second = ITEMS[:1], ITEMS[1:]
    skewed = [(-30.0, 6), (-3.0, 3)]  # perplexities e^5 over 6 tokens and e^1 over 3: exp(33 / 9) together
    assert pool_perplexity([perplexity(first), perplexity(second)], [6, 6]) == pytest.approx(perplexity(ITEMS))
    assert pool_perplexity([math.exp(5.0), math.exp(1.0)], [6, 3]) == pytest.approx(perplexity(skewed))
    assert perplexity(skewed) == pytest.approx(math.exp(33.0 / 9))
    assert perplexity(skewed) != pytest.approx((math.exp(5.0) + math.exp(1.0)) / 2)


def test_unknown_token_counts_give_nan():
    assert math.isnan(perplexity([(-1.0, math.nan), (-2.0, 3)]))
    assert math.isnan(perplexity([]))
    assert math.isnan(pool_perplexity([2.0, math.nan], [3, 4]))
    assert pool_perplexity([2.0, 5.0], [3, 0]) == pytest.approx(2.0)  # a leaf with no tokens adds nothing


def test_response_terms():
    causal = ScoredLoglikelihood(-6.0, False, 3)
    assert perplexity_terms(causal, "unused", "{}") == (-6.0, 3.0)
    masked = ScoredLoglikelihood(-1.5, False, None, (-6.0, 4))  # a modified-token mean: its tokens give the sum
    assert perplexity_terms(masked, "unused", "{}") == (-6.0, 4.0)
    import pickle

    assert pickle.loads(pickle.dumps(masked)).perplexity_terms == (-6.0, 4)
    terms = perplexity_terms((-6.0, False), "unused", "{}")  # a stock model given as an object: no tokenizer
    assert terms[0] == -6.0 and math.isnan(terms[1])
