"""`quantized_hf`: lm-eval's HFLM with a compression method applied, for causal and masked LMs.

    lm_eval --model quantized_hf --model_args pretrained=...,quantization=dynamic_int8

Everything HFLM accepts still works (revision, dtype, peft, gguf_file, ...). Scoring is
delegated to `lm_eval_bias.scoring`: causal log-probabilities for `loglikelihood`, and for
masked LMs the pseudo-log-likelihood of the two sentences of a minimal pair. Two request
types of our own (`lm_eval_bias.request_types`): `sentence_embedding` (SEAT) and
`stereoset_score` (StereoSet).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import torch
import transformers
from lm_eval.models.huggingface import HFLM

from lm_eval_bias.distillation_record import distillation_info
from lm_eval_bias.errors import BiasOptionError, did_you_mean
from lm_eval_bias.model_wrappers import model_args
from lm_eval_bias.model_wrappers.input_length import LONG_INPUT_RULES, InputLengthCheck
from lm_eval_bias.model_wrappers.loading import CheckedLoader, is_encoder_only, logical_parameter_count, model_bytes
from lm_eval_bias.model_wrappers.paper_protocol import PaperProtocolScoring
from lm_eval_bias.model_wrappers.quantizers.auto import get_quantizer, quantizer_options, split_model_args
from lm_eval_bias.scoring import stereoset as stereoset_scoring
from lm_eval_bias.scoring.causal import score_continuations
from lm_eval_bias.scoring.embeddings import sentence_embeddings
from lm_eval_bias.scoring.masked import VARIANTS as MLM_SCORES
from lm_eval_bias.scoring.masked import pll_score, score_minimal_pair_tokens
from lm_eval_bias.scoring.masked_continuations import score_masked_continuations
from lm_eval_bias.scoring.sentence_scores import ScoredLoglikelihood

BACKENDS = ("default", "causal", "masked", "seq2seq")
DEFAULT_BATCH_SIZE = 16
CACHE_CHUNK = 2048  # requests scored between two writes to lm-eval's response cache (--use_cache)


class QuantizedHFLM(PaperProtocolScoring, HFLM):
    def __init__(
        self,
        pretrained: str | transformers.PreTrainedModel,
        quantization: str = "none",
        backend: str = "default",
        mlm_score: str = "shared",
        long_inputs: str = "error",
        **kwargs: Any,
    ) -> None:
        for name, value, valid in (
            ("backend", backend, BACKENDS),
            ("mlm_score", mlm_score, MLM_SCORES),
            ("long_inputs", long_inputs, LONG_INPUT_RULES),
        ):
            if value not in valid:
                raise BiasOptionError(
                    f"Unknown {name} {value!r}{did_you_mean(value, valid)}; expected one of {tuple(valid)}."
                )
        # refused before anything loads (docs/errors.md): a missing local folder, an unknown dtype
        model_args.check_pretrained(pretrained)
        model_args.check_dtype(kwargs.get("dtype"))
        options, kwargs = split_model_args(kwargs)
        # parsed once into the method's typed config; lm-eval's model_args parser turns "none" into None
        self._quantizer = get_quantizer(quantization, **options)
        model_args.check_near_misses(
            self._quantizer.name, kwargs, self._quantizer.config_class.option_names(), quantizer_options()
        )
        self._lengths = InputLengthCheck(long_inputs)
        self._quantizer.validate_environment(_resolved_device(kwargs.get("device", "cuda")))
        self._requested_backend = backend
        self.mlm_score = mlm_score
        super().__init__(pretrained, backend="default" if backend == "masked" else backend, **kwargs)
        self._logical_parameters = logical_parameter_count(self._model)
        self._model = self._quantizer.postprocess_model(self._model)
        self._model.eval()
        self._bytes_after = model_bytes(self._model)

    # --- loading -------------------------------------------------------------------

    def _get_backend(self, config, backend="default", trust_remote_code=False) -> None:
        if self._requested_backend == "masked" or (self._requested_backend == "default" and is_encoder_only(config)):
            self.backend = "masked"
            self.AUTO_MODEL_CLASS = transformers.AutoModelForMaskedLM
            return
        super()._get_backend(config, backend=backend, trust_remote_code=trust_remote_code)

    def _create_model(self, *args: Any, **kwargs: Any) -> None:
        auto_class = self.AUTO_MODEL_CLASS
        self.AUTO_MODEL_CLASS = CheckedLoader(auto_class, self._quantizer)
        try:
            super()._create_model(*args, **kwargs)
        finally:
            self.AUTO_MODEL_CLASS = auto_class

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None):
        """As HFLM's, but a key given twice (``bits=4,bits=8``) is refused, not silently the last one."""
        model_args.check_repeated(model_args.split_items(arg_string or ""))
        return super().create_from_arg_string(arg_string, additional_config)

    def get_model_info(self) -> dict[str, Any]:
        return {
            **super().get_model_info(),
            **self._lengths.record(),
            "backend": self.backend,
            # the fixed-schema compression record (docs/compression.md): method, settings, bits, bytes
            "quantization": self._quantizer.record(4 * self._logical_parameters, self._bytes_after).to_dict(),
            **({"mlm_score": self.mlm_score} if self.backend == "masked" else {}),
            **distillation_info(self._model, self.peft),  # a distilled checkpoint's teacher record
        }

    # --- scoring -------------------------------------------------------------------

    @property
    def scoring_batch_size(self) -> int:
        size = self.batch_size_per_gpu
        return int(size) if str(size).isdigit() else DEFAULT_BATCH_SIZE

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        if self.backend != "masked":
            self._lengths.expect(requests)  # _loglikelihood_tokens names a too-long request's document
            return super().loglikelihood(requests, disable_tqdm=disable_tqdm)
        # masked LMs: a document's two sentences without a context are a minimal pair (CrowS-Pairs); a
        # continuation with a context (a multiple-choice answer) gets its pseudo-log-likelihood given the
        # context, and a document's lone sentence without one (HolisticBias) the PLL of all its tokens
        lengths = [self._masked_length(*r.args[:2]) for r in requests]
        self._lengths.check_whole(lengths, requests, self._masked_context())
        results: list[ScoredLoglikelihood | None] = [None] * len(requests)
        sentences = Counter((r.task_name, r.doc_id) for r in requests if r.args[0] == "")
        pairs = [i for i, r in enumerate(requests) if r.args[0] == "" and sentences[(r.task_name, r.doc_id)] != 1]
        paired = set(pairs)
        conditioned = [i for i in range(len(requests)) if i not in paired]
        if pairs:
            scored = self._minimal_pair_loglikelihood([requests[i] for i in pairs], disable_tqdm)
            for i, result in zip(pairs, scored):
                results[i] = result
        if conditioned:
            scored = score_masked_continuations(
                self.model,
                self.tokenizer,
                [tuple(requests[i].args[:2]) for i in conditioned],
                batch_size=self.scoring_batch_size,
                progress=not disable_tqdm,
            )
            for i, (pll, tokens) in zip(conditioned, scored):
                results[i] = ScoredLoglikelihood(pll, False, tokens)
        return results

    def _masked_length(self, context: str, continuation: str) -> int:
        """Tokens of a masked LM's input: the special tokens around one sequence, the context, the continuation."""
        encode = self.tokenizer
        body = [len(encode(text, add_special_tokens=False)["input_ids"]) for text in (context, continuation) if text]
        return self.tokenizer.num_special_tokens_to_add(pair=False) + sum(body)

    def _masked_context(self) -> int:
        """The most tokens a masked LM reads: the tokenizer's limit where it has one, else its positions
        (less RoBERTa's two reserved ones: its positions start after the padding index)."""
        limit = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(limit, int) and limit < 1_000_000:
            return limit
        reserved = 2 if "roberta" in str(getattr(self.model.config, "model_type", "")) else 0
        return self.max_length - reserved

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs=None):
        self._lengths.check(
            [len(context) + len(continuation) for _, context, continuation in requests],
            [self._lengths.owner(cache_key) for cache_key, _, _ in requests],
            self.max_length,
        )
        results = []
        # under lm-eval's response cache (--use_cache), chunk by chunk: each chunk's responses are in the
        # cache before the next is scored, so a run cut off resumes from them, as HFLM's does
        chunks = cache_chunks(requests) if self.cache_hook.dbdict is not None else [requests]
        for chunk in chunks:
            scores = self._score_tokens(
                [(context, continuation) for _, context, continuation in chunk],
                disable_tqdm,
                override_bs,
                share_contexts=True,  # a multiple-choice item's answers: the context's body once
            )
            for (cache_key, _, _), score in zip(chunk, scores):
                result = ScoredLoglikelihood(score.logprob, score.is_greedy, score.num_tokens)
                self.cache_hook.add_partial("loglikelihood", cache_key, result)
                results.append(result)
        return results

    def _score_tokens(self, requests, disable_tqdm: bool, batch_size=None, share_contexts: bool = False):
        return score_continuations(
            self.model,
            requests,
            batch_size=int(batch_size or self.scoring_batch_size),
            pad_token_id=self.tokenizer.pad_token_id,
            max_length=self.max_length,
            progress=not disable_tqdm,
            share_prefixes=self._quantizer.position_independent,
            share_contexts=share_contexts and self._quantizer.position_independent,
        )

    def _encode_request(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Token ids as the harness's `loglikelihood` encodes a request (empty context: the prefix token)."""
        if context:
            return self._encode_pair(context, continuation)
        ids = self.tok_encode(continuation, add_special_tokens=False)
        return (ids[:1], ids[1:]) if ids and ids[0] == self.prefix_token_id else ([self.prefix_token_id], ids)

    def _minimal_pair_loglikelihood(self, requests, disable_tqdm: bool):
        """Masked LMs score the two requests of one document jointly, as a minimal pair."""
        by_document: dict[tuple, list[int]] = defaultdict(list)
        for index, request in enumerate(requests):
            by_document[(request.task_name, request.doc_id)].append(index)
        pairs, owners = [], []
        for (task_name, doc_id), indices in by_document.items():
            contexts = {requests[i].args[0] for i in indices}
            if len(indices) != 2 or contexts != {""}:
                raise BiasOptionError(
                    f"Masked LMs can only score minimal pairs (two sentences, empty context) with loglikelihood; "
                    f"task {task_name!r} document {doc_id} has {len(indices)} requests. Use a causal LM for this task."
                )
            pairs.append(tuple(requests[i].args[1] for i in indices))
            owners.append(indices)
        scored = score_minimal_pair_tokens(
            self.model,
            self.tokenizer,
            pairs,
            batch_size=self.scoring_batch_size,
            variant=self.mlm_score,
            progress=not disable_tqdm,
        )
        results: list[ScoredLoglikelihood | None] = [None] * len(requests)
        for indices, pair_tokens in zip(owners, scored):
            for index, tokens in zip(indices, pair_tokens):  # the PLL is final; its tokens give pseudo-perplexity
                results[index] = ScoredLoglikelihood(
                    pll_score(tokens, self.mlm_score), False, None, (sum(tokens), len(tokens))
                )
        return results

    def sentence_embedding(self, requests, disable_tqdm: bool = False):
        """Mean last-layer hidden state of each `(sentence,)` request, L2-normalised (numpy)."""
        self._require_causal_or_masked("sentence_embedding")
        sentences = [request.args[0] for request in requests]
        unique = list(dict.fromkeys(sentences))  # SEAT tests share attribute sets: embed each sentence once
        vectors = sentence_embeddings(
            self.model, self.tokenizer, unique, batch_size=self.scoring_batch_size, progress=not disable_tqdm
        )
        by_sentence = dict(zip(unique, vectors))
        return [by_sentence[sentence] for sentence in sentences]

    def stereoset_score(self, requests, disable_tqdm: bool = False):
        """One StereoSet candidate score per `(split, context, sentence, mlm_score)` request."""
        self._require_causal_or_masked("stereoset_score")
        arguments = [tuple(request.args) for request in requests]
        if self.backend == "masked":
            return stereoset_scoring.score_masked(
                self.model, self.tokenizer, arguments, batch_size=self.scoring_batch_size, progress=not disable_tqdm
            )
        encoded = [self._encode_request(*stereoset_scoring.causal_pair(*args)) for args in arguments]
        self._lengths.check([len(a) + len(b) for a, b in encoded], requests, self.max_length)
        return [score.logprob / score.num_tokens for score in self._score_tokens(encoded, disable_tqdm)]

    def _require_causal_or_masked(self, request_type: str) -> None:
        if self.backend not in ("causal", "masked"):
            raise BiasOptionError(
                f"{request_type} needs a causal or masked LM; this model was loaded as {self.backend}."
            )

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        self._require_causal("loglikelihood_rolling")
        return super().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm)

    def generate_until(self, requests, disable_tqdm: bool = False):
        self._require_causal("generate_until")
        return super().generate_until(requests, disable_tqdm=disable_tqdm)

    def _require_causal(self, request_type: str) -> None:
        if self.backend == "masked":
            raise BiasOptionError(
                f"{request_type} needs a causal LM; this model was loaded as a masked LM (backend=masked)."
            )


def cache_chunks(requests: list, size: int | None = None) -> list[list]:
    """Consecutive runs of about SIZE (default ``CACHE_CHUNK``) requests ``(cache_key, context, continuation)``,
    a run never ending between two requests of one context (a multiple-choice item's answers stay together, so
    their context is still run once)."""
    size = size or CACHE_CHUNK
    chunks, start = [], 0
    while start < len(requests):
        stop = min(start + size, len(requests))
        while stop < len(requests) and requests[stop][1] == requests[stop - 1][1]:
            stop += 1
        chunks.append(requests[start:stop])
        start = stop
    return chunks


def _resolved_device(device: str | None) -> str:
    if device is None or (str(device).startswith("cuda") and not torch.cuda.is_available()):
        return "cpu"
    return str(device)
