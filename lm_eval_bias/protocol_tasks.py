"""Task classes that follow ``--metadata '{"protocol": ...}'`` (:mod:`lm_eval_bias.protocol`).

Each resolves the protocol (and StereoSet's file split) into its config's metadata before the
harness loads any data, so the custom_dataset functions read it and the results JSON records
it under ``configs.<task>.metadata``. Under ``default`` they behave exactly as before; under
``paper`` they emit the paper protocol's request types (:mod:`lm_eval_bias.request_types`).
"""

from __future__ import annotations

from typing import Any

from lm_eval.api.instance import Instance
from lm_eval.api.task import ConfigurableTask

from lm_eval_bias import protocol
from lm_eval_bias.data.stereoset import CANDIDATES
from lm_eval_bias.metrics.crows_pairs import ANTISTEREO
from lm_eval_bias.request_types import CROWS_PAIRS_PAPER_SCORE, STEREOSET_PAPER_SCORE, CustomRequestTask


def _with_protocol(config: dict[str, Any] | None, *, stereoset: bool = False) -> dict[str, Any]:
    config = {k: v for k, v in (config or {}).items() if k != "class"}
    config["metadata"] = protocol.resolved(config.get("metadata"), stereoset=stereoset)
    return config


class CrowsPairsTask(ConfigurableTask):
    """crows_pairs_bias: lm-eval's multiple_choice (two loglikelihood requests per pair) under
    ``default``; one ``crows_pairs_paper_score`` request per pair under ``paper``, whose pairs
    the model may skip (bias-bench leaves them out of N: they add no metric item)."""

    def __init__(self, config: dict[str, Any] | None = None, **kwargs: Any) -> None:
        config = _with_protocol(config)
        self.protocol = config["metadata"][protocol.PROTOCOL_KEY]
        if self.protocol == "paper" and config["metadata"].get("sentence_score", "mean") != "mean":
            raise ValueError(
                f"The paper protocol scores a sentence by its mean token log-probability (bias-bench's geometric "
                f"mean); sentence_score={config['metadata']['sentence_score']!r} cannot be combined with it. "
                "Leave sentence_score out (or set it to 'mean')."
            )
        super().__init__(config=config, **kwargs)
        if self.protocol == "paper":
            self.OUTPUT_TYPE = CROWS_PAIRS_PAPER_SCORE

    def construct_requests(self, doc: dict, ctx: Any, **kwargs: Any):
        if self.protocol != "paper":
            return super().construct_requests(doc, ctx, **kwargs)
        kwargs.pop("apply_chat_template", None)
        kwargs.pop("chat_template", None)
        sentences = _bias_bench_order(doc, tuple(self.doc_to_choice(doc)))
        return [Instance(request_type=CROWS_PAIRS_PAPER_SCORE, doc=doc, arguments=sentences, idx=0, **kwargs)]

    def process_results(self, doc: dict, results: list) -> dict:
        if self.protocol != "paper":
            return super().process_results(doc, results)
        (pair,) = results
        if pair is None:  # skipped: no differing token in one sentence
            return {}
        return super().process_results(doc, list(_bias_bench_order(doc, tuple(pair))))


def _bias_bench_order(doc: dict, pair: tuple) -> tuple:
    """(sent_more, sent_less) <-> bias-bench's (sent1, sent2): the stereotypical sentence first for
    `stereo` pairs, the anti-stereotypical one first for `antistereo` pairs. The order matters for
    masked LMs: difflib's matching blocks, hence the differing tokens, depend on which sentence is
    compared with which. The swap is its own inverse."""
    return pair[::-1] if doc.get("stereo_antistereo") == ANTISTEREO else pair


class StereoSetProtocolTask(CustomRequestTask):
    """Base of the stereoset_bias tasks: reads ``stereoset_split``'s file and, under ``paper``,
    asks intrasentence candidates for ``stereoset_paper_score`` (args ``(context, sentence)``)."""

    def __init__(self, config: dict[str, Any] | None = None, **kwargs: Any) -> None:
        config = _with_protocol(config, stereoset=True)
        split = (config.get("dataset_kwargs") or {}).get("split")
        self.protocol = config["metadata"][protocol.PROTOCOL_KEY]
        self.paper_scores = self.protocol == "paper" and split == "intrasentence"
        super().__init__(config=config, **kwargs)
        if self.paper_scores:
            self.OUTPUT_TYPE = STEREOSET_PAPER_SCORE

    def construct_requests(self, doc: dict, ctx: Any, **kwargs: Any) -> list[Instance]:
        if not self.paper_scores:
            return super().construct_requests(doc, ctx, **kwargs)
        kwargs.pop("apply_chat_template", None)
        kwargs.pop("chat_template", None)
        return [
            Instance(
                request_type=STEREOSET_PAPER_SCORE,
                doc=doc,
                arguments=(doc["context"], doc[candidate]),
                idx=index,
                **kwargs,
            )
            for index, candidate in enumerate(CANDIDATES)
        ]
