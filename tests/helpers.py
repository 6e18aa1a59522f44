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
