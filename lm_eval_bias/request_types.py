"""Request types beyond the harness's four, and the check that a model implements them.

lm-eval 0.4.13 groups every task's ``Instance`` objects by ``instance.request_type`` and
calls ``getattr(lm, request_type)(instances)``, so a new request type is a method name on
the model. Ours, implemented by ``quantized_hf`` (causal and masked, any compression):

- ``sentence_embedding``: args ``(sentence,)``, answer a unit-norm numpy vector
  (:mod:`lm_eval_bias.scoring.embeddings`);
- ``stereoset_score``: args ``(split, context, sentence, mlm_score)``, answer a float
  (:mod:`lm_eval_bias.scoring.stereoset`);
- under ``--metadata '{"protocol": "paper"}'`` (:mod:`lm_eval_bias.protocol`):
  ``crows_pairs_paper_score``, args ``(sentence_1, sentence_2)``, answer a score per sentence
  or None for a pair the study skips; ``stereoset_paper_score``, args ``(context, sentence)``,
  answer a float (:mod:`lm_eval_bias.scoring.paper`).

``ConfigurableTask`` only accepts the four stock output types, so tasks that emit ours
subclass :class:`lm_eval_bias.task_base.BiasTask` (named in their YAML as ``class: !function ...``)
and declare the request type there.

A model that lacks a request type would only fail when the harness reaches that type,
after it has scored every request type before it. The plugin therefore checks before
``lm_eval.evaluator.evaluate`` builds or scores anything (:func:`check_request_types`).
"""

from __future__ import annotations

from lm_eval_bias.errors import BiasOptionError

SENTENCE_EMBEDDING = "sentence_embedding"
STEREOSET_SCORE = "stereoset_score"
# the paper protocol's (lm_eval_bias.protocol; answered by model_wrappers/paper_protocol.py)
CROWS_PAIRS_PAPER_SCORE = "crows_pairs_paper_score"
STEREOSET_PAPER_SCORE = "stereoset_paper_score"
REQUEST_TYPES = (SENTENCE_EMBEDDING, STEREOSET_SCORE, CROWS_PAIRS_PAPER_SCORE, STEREOSET_PAPER_SCORE)


def _request_type(task) -> str | None:
    output_type = getattr(task, "OUTPUT_TYPE", None)
    return "loglikelihood" if output_type == "multiple_choice" else output_type


def supporting_models(request_type: str) -> list[str]:
    """Names of the plugin's registered models that implement ``request_type``."""
    import importlib

    from lm_eval_bias.catalog import MODELS

    names = []
    for name, target in MODELS.items():
        module, _, cls = target.partition(":")
        try:
            if callable(getattr(getattr(importlib.import_module(module), cls), request_type, None)):
                names.append(name)
        except Exception:  # noqa: BLE001, S112 - a model that cannot be imported supports nothing
            continue
    return names


def check_request_types(lm, tasks) -> None:
    """Raise ``ValueError`` naming the tasks, the model and the models that would work when
    ``lm`` lacks the method of any task's request type; ``tasks`` maps names to Task objects."""
    missing: dict[str, list[str]] = {}
    for name, task in tasks.items():
        request_type = _request_type(task)
        if request_type and not callable(getattr(lm, request_type, None)):
            missing.setdefault(request_type, []).append(name)
    if not missing:
        return
    model = type(getattr(lm, "lm", lm)).__name__  # CachingLM wraps the model as .lm
    problems = []
    for request_type, names in missing.items():
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        supported = supporting_models(request_type)
        problems.append(
            f"task(s) {shown} need the request type {request_type!r}, which the model class {model} does not "
            f"implement; models that implement it: {', '.join(supported) or 'none registered'}"
        )
    raise BiasOptionError(
        "; ".join(problems) + ". Run these tasks with --model quantized_hf (quantization=none scores the "
        "model unchanged), or leave them out. Nothing was scored."
    )
