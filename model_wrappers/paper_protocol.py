"""The paper protocol's two request types, for any HFLM-based wrapper (mixed into ``quantized_hf``).

- ``crows_pairs_paper_score``: args ``(sentence_1, sentence_2)``; answer one
  :class:`ScoredLoglikelihood` per sentence, or ``None`` when bias-bench skips the pair
  (masked LMs, a sentence with no differing token). Causal answers carry the summed
  log-probability and the token count (their ratio is the sentence score); masked answers
  are final, already rounded to 3 decimals.
- ``stereoset_paper_score``: args ``(context, sentence)`` of an intrasentence candidate;
  answer a float, higher = more likely: the mean log-probability (causal) or the mean
  target-word subtoken probability (masked).

The scores themselves are in :mod:`lm_eval_bias.scoring.paper`.
"""

from __future__ import annotations

from lm_eval_bias.protocol import is_roberta_name
from lm_eval_bias.scoring import paper
from lm_eval_bias.scoring.sentence_scores import ScoredLoglikelihood


class PaperProtocolScoring:
    """Needs ``model``, ``tokenizer``, ``backend``, ``prefix_token_id``, ``max_length``,
    ``scoring_batch_size`` and ``pretrained`` (HFLM's attributes), and ``_quantizer``."""

    def crows_pairs_paper_score(self, requests, disable_tqdm: bool = False):
        pairs = [tuple(request.args) for request in requests]
        if self.backend == "masked":
            scored = paper.crows_masked_pair_scores(
                self.model, self.tokenizer, pairs, batch_size=self.scoring_batch_size, progress=not disable_tqdm
            )
            return [
                None if pair is None else tuple(ScoredLoglikelihood(s, False, None) for s in pair) for pair in scored
            ]
        self._require_causal_or_masked("crows_pairs_paper_score")
        scores = self._paper_causal_scores(
            [sentence for pair in pairs for sentence in pair], disable_tqdm, [r for r in requests for _ in (0, 1)]
        )
        return [
            tuple(ScoredLoglikelihood(s.logprob, s.is_greedy, s.num_tokens) for s in scores[2 * i : 2 * i + 2])
            for i in range(len(pairs))
        ]

    def stereoset_paper_score(self, requests, disable_tqdm: bool = False):
        arguments = [tuple(request.args) for request in requests]
        if self.backend == "masked":
            return paper.stereoset_masked_scores(
                self.model,
                self.tokenizer,
                arguments,
                roberta=is_roberta_name(self._paper_model_name()),
                batch_size=self.scoring_batch_size,
                progress=not disable_tqdm,
            )
        self._require_causal_or_masked("stereoset_paper_score")
        scores = self._paper_causal_scores([sentence for _, sentence in arguments], disable_tqdm, requests)
        return [score.logprob / score.num_tokens for score in scores]

    def _paper_causal_scores(self, sentences, disable_tqdm: bool, requests=None):
        encoded = [self.tokenizer.encode(sentence, add_special_tokens=False) for sentence in sentences]
        lengths = getattr(self, "_lengths", None)
        if lengths is not None:  # the prefix token + the sentence must fit the context
            lengths.check([1 + len(ids) for ids in encoded], requests or [None] * len(encoded), self.max_length)
        return paper.causal_sentence_scores(
            self.model,
            encoded,
            prefix_token_id=self.prefix_token_id,
            batch_size=self.scoring_batch_size,
            pad_token_id=self.tokenizer.pad_token_id,
            max_length=self.max_length,
            progress=not disable_tqdm,
            share_prefixes=self._quantizer.position_independent,
        )

    def _paper_model_name(self) -> str:
        """The name or path the model was loaded from (bias-bench's ``model_name_or_path``)."""
        if isinstance(self.pretrained, str):
            return self.pretrained
        return str(getattr(self.model, "name_or_path", "") or "")
