"""crows_pairs_bias's requests under ``--metadata '{"protocol": ...}'`` (:mod:`lm_eval_bias.protocol`).

Under ``default`` the task is lm-eval's ``multiple_choice`` (two loglikelihood requests per pair);
under ``paper`` it emits one ``crows_pairs_paper_score`` request per pair
(:mod:`lm_eval_bias.request_types`). The config is adapted by :class:`lm_eval_bias.task_base.BiasTask`
from the declarations below; ``tasks/crows_pairs_bias/utils.py`` adds what turns a pair's two
responses into metric values.
"""

from __future__ import annotations

from typing import Any

from lm_eval_bias.errors import BiasOptionError
from lm_eval_bias.metrics.crows_pairs import ANTISTEREO
from lm_eval_bias.request_types import CROWS_PAIRS_PAPER_SCORE
from lm_eval_bias.scoring.sentence_scores import check_sentence_score, tokenizer_spec
from lm_eval_bias.task_base import BiasTask


class CrowsPairsTask(BiasTask):
    """crows_pairs_bias: two loglikelihood requests per pair under ``default``; one
    ``crows_pairs_paper_score`` request per pair under ``paper``, whose pairs the model may skip
    (bias-bench leaves them out of N: they add no metric item). Subclasses define
    :meth:`pair_values`, which gets the pair's two responses in (sent_more, sent_less) order either way."""

    FOLLOWS_PROTOCOL = True
    PAPER_REQUEST_TYPE = CROWS_PAIRS_PAPER_SCORE

    def read_settings(self, metadata: dict[str, Any]) -> None:
        """``sentence_score`` (the paper protocol allows only ``mean``), and the tokenizer that counts
        tokens for models whose responses carry no count (stock ``hf``), from the model_args that
        lm-eval merges into the metadata."""
        sentence_score = metadata.get("sentence_score", "mean")
        if self.protocol == "paper" and sentence_score != "mean":
            raise BiasOptionError(
                f"The paper protocol scores a sentence by its mean token log-probability (bias-bench's geometric "
                f"mean); sentence_score={sentence_score!r} cannot be combined with it. "
                "Leave sentence_score out (or set it to 'mean')."
            )
        self.sentence_score = check_sentence_score(sentence_score)
        self.tokenizer = tokenizer_spec(metadata)

    def request_arguments(self, doc: dict) -> list[tuple]:
        return [_bias_bench_order(doc, tuple(self.doc_to_choice(doc)))]

    def process_results(self, doc: dict, results: list) -> dict:
        if self.protocol == "paper":
            (pair,) = results
            if pair is None:  # skipped: no differing token in one sentence
                return {}
            results = list(_bias_bench_order(doc, tuple(pair)))
        return self.pair_values(doc, results)

    def pair_values(self, doc: dict, responses: list) -> dict:
        """The metric values of one pair.

        Args:
            doc: the pair's document (``sent_more``, ``sent_less``, ``stereo_antistereo``, ...).
            responses: the model's answers for ``sent_more`` and ``sent_less``, in that order.

        Returns:
            metric name -> this pair's value, for every metric of the task's ``metric_list``.
        """
        raise NotImplementedError


def _bias_bench_order(doc: dict, pair: tuple) -> tuple:
    """(sent_more, sent_less) <-> bias-bench's (sent1, sent2): the stereotypical sentence first for
    `stereo` pairs, the anti-stereotypical one first for `antistereo` pairs. The order matters for
    masked LMs: difflib's matching blocks, hence the differing tokens, depend on which sentence is
    compared with which. The swap is its own inverse."""
    return pair[::-1] if doc.get("stereo_antistereo") == ANTISTEREO else pair
