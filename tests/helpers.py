"""Running the harness in tests: results, logged samples, and the same run at other settings."""

from __future__ import annotations

import lm_eval


def evaluate(model: str, model_args: str, tasks: list[str], batch_size: int = 4, **kwargs):
    return lm_eval.simple_evaluate(
        model=model, model_args=model_args, tasks=tasks, device="cpu", batch_size=batch_size,
        log_samples=True, bootstrap_iters=200, **kwargs,
    )


def sample_scores(results, task: str) -> dict[int, tuple[float, float]]:
    """doc_id -> (sent_more score, sent_less score) from the logged samples."""
    return {s["doc_id"]: (s["sent_more_score"], s["sent_less_score"]) for s in results["samples"][task]}


def metric(results, task: str, name: str) -> float:
    return results["results"][task][f"{name},none"]


def corpus_sentence_scores(model, tokenizer, batch_size: int = 8):
    """Summed log-probability of every fixture sentence after the prefix token, by our batched scorer."""
    import torch
    from conftest import CORPUS

    from lm_eval_bias.scoring.causal import score_continuations

    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    requests = [([prefix], tokenizer.encode(sentence, add_special_tokens=False)) for sentence in CORPUS]
    scores = score_continuations(model, requests, batch_size=batch_size, pad_token_id=pad)
    return torch.tensor([s.logprob for s in scores], dtype=torch.float64)
