"""What lm-eval-bias adds to lm-evaluation-harness, named once: its models and its task folder.

A neutral module (standard library only, no lm_eval, no torch) so that everything that needs
these names reads them from here: the import hook's registry patch (:mod:`lm_eval_bias.plugin`),
the request-type check (:mod:`lm_eval_bias.request_types`), the study runner and the CLI (which
ask lm-eval for our tasks explicitly), and the unit test that holds pyproject.toml's
``lm_eval.models`` entry points equal to :data:`MODELS`.
"""

from __future__ import annotations

# Models added to lm-eval's registry: name -> "module:Class" (imported on first use).
# pyproject.toml's [project.entry-points."lm_eval.models"] lists the same pairs.
MODELS = {
    "quantized_hf": "lm_eval_bias.model_wrappers.quantized_hf:QuantizedHFLM",
    "distilled_hf": "lm_eval_bias.model_wrappers.distilled_hf:DistilledHFLM",
}

# The package that holds our task YAMLs (tasks/ in the repository).
TASKS_PACKAGE = "lm_eval_bias.tasks"


def tasks_dir() -> str | None:
    """Folder of the ``lm_eval_bias.tasks`` package, located without importing it."""
    import importlib.util

    spec = importlib.util.find_spec(TASKS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return str(list(spec.submodule_search_locations)[0])


def with_our_tasks(include_path=None) -> list:
    """Our task folder first, then the caller's paths (later paths override earlier ones).

    What code of ours passes as ``TaskManager(include_path=...)`` when it needs our tasks
    without lm-eval's own (``include_defaults=False``); the plugin adds the folder by itself
    only when lm-eval's defaults are included.
    """
    import os

    if include_path is None:
        user = []
    elif isinstance(include_path, (list, tuple)):
        user = list(include_path)
    else:
        user = [include_path]
    ours = tasks_dir()
    if ours is None:
        return user
    real = os.path.realpath(ours)

    def is_ours(p) -> bool:
        try:
            return os.path.realpath(os.fspath(p)) == real
        except TypeError:
            return False

    return [ours] + [p for p in user if not is_ours(p)]
