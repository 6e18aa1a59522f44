"""What the import hook (``lm_eval_bias._plugin_hook``) does to lm-eval.

Each ``on_*`` function gets the lm_eval module right after it has executed.
Nothing here imports torch or transformers; models stay lazy registry entries.
"""

from __future__ import annotations

import functools
import math
import numbers

from lm_eval_bias.catalog import MODELS, tasks_dir, with_our_tasks  # noqa: F401 - re-exported

_WRAPPED = "_lm_eval_bias_wrapped"


def _warn(message: str) -> None:
    import warnings

    warnings.warn(f"lm-eval-bias plugin: {message}", RuntimeWarning, stacklevel=3)


# --------------------------------------------------------------------- models


def on_registry(registry) -> None:
    # Stock models first: get_model() only imports lm_eval.models (which registers
    # them) while the registry is empty, so registering ours first would hide "hf".
    import lm_eval.models  # noqa: F401

    for name, target in MODELS.items():
        if name not in registry.model_registry:
            registry.model_registry.register(name, target=target)


# ---------------------------------------------------------------------- tasks


def on_task_manager(manager) -> None:
    import inspect

    cls = manager.TaskManager
    original = cls.__init__
    if getattr(original, _WRAPPED, False):
        return
    signature = inspect.signature(original)

    @functools.wraps(original)
    def __init__(self, *args, **kwargs):
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError:
            return original(self, *args, **kwargs)  # the harness reports the bad call
        user = bound.arguments.get("include_path")
        bound.apply_defaults()
        if bound.arguments.get("include_defaults"):  # our tasks count as defaults: never added without them
            try:
                bound.arguments["include_path"] = with_our_tasks(user)
            except Exception as exc:  # noqa: BLE001 - never stop the harness
                _warn(f"could not add the lm-eval-bias task folder: {exc!r}")
        original(*bound.args, **bound.kwargs)
        self.include_path = user  # the attribute keeps what the caller passed

    setattr(__init__, _WRAPPED, True)
    cls.__init__ = __init__
    _cache_task_index(manager.TaskIndex)


def _cache_task_index(index_cls) -> None:
    """lm-eval's own tasks folder indexed from a cache between runs (`task_index_cache`)."""
    from lm_eval_bias.task_index_cache import cached_build

    if not getattr(index_cls.build, _WRAPPED, False):
        build = cached_build(index_cls.build)
        setattr(build, _WRAPPED, True)
        index_cls.build = staticmethod(build)


# ---------------------------------------------------------- group aggregation


def _number(x) -> bool:
    """A real number, not NaN (numpy scalars included; "N/A", None and bools are not)."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and not math.isnan(x)


def _resolve(target: str):
    """The object a group YAML names as "module:attribute" (e.g. a metric module's table or function)."""
    import importlib

    module, _, name = str(target).partition(":")
    return getattr(importlib.import_module(module), name)


def group_metadata(group) -> dict:
    """The metadata of a group's YAML, where each pooling below looks for its key.

    Args:
        group: an lm-eval ``Group`` (its ``metadata``), or one that keeps the metadata only on its
            config (``group._config.metadata``).

    Returns:
        The metadata dict; empty when the group has none.
    """
    metadata = getattr(group, "metadata", None)
    if not isinstance(metadata, dict):
        metadata = getattr(getattr(group, "_config", None), "metadata", None)
    return metadata if isinstance(metadata, dict) else {}


def group_leaves(group, task_metrics: dict) -> list[dict]:
    """The metrics of a group's leaf tasks, at any depth, as lm-eval hands them to ``Group.aggregate``.

    Args:
        group: an lm-eval ``Group``.
        task_metrics: task name -> that task's metrics (``"metric,filter"`` -> value, ``sample_len``).

    Returns:
        One metrics dict per leaf task that has metrics, in the group's task order.
    """
    return [task_metrics[task.task_name] for task in group.get_all_tasks() if task.task_name in task_metrics]


def _pooled_ratio_metrics(group) -> dict:
    """``pooled_ratio_metrics`` of the group metadata: a {metric: count_metric} mapping, or the
    "module:NAME" of one (crows_pairs_bias names lm_eval_bias.metrics.crows_pairs:SUBSET_METRICS)."""
    pooled = group_metadata(group).get("pooled_ratio_metrics")
    if isinstance(pooled, str) and ":" in pooled:
        pooled = _resolve(pooled)
    return dict(pooled) if isinstance(pooled, dict) else {}


def _filters(metric: str, leaves: list[dict]) -> list[str]:
    prefix = f"{metric},"
    return sorted({k[len(prefix) :] for leaf in leaves for k in leaf if k.startswith(prefix)})


def _proportion_metrics(group) -> list:
    names = group_metadata(group).get("pooled_percentage_metrics")
    return list(names) if isinstance(names, list) else []


def percentage_stderr(percent: float, n: int) -> float:
    """Standard error of the mean of n values that are each 0 or 100 (sample std, ddof=1)."""
    return math.sqrt(percent * (100.0 - percent) / (n - 1)) if n > 1 else math.nan


def pool_percentages(group, task_metrics: dict, group_metrics: dict) -> dict:
    """Stderr of pooled 0/100 per-item metrics over all the group's items.

    For ``pooled_percentage_metrics: [metric, ...]`` the group value (the size-weighted
    mean, i.e. the pooled mean) gets the standard error of a mean of 0/100 items over
    every item of the group, even where a one-item subtask has none of its own. A metric
    that is also a pooled ratio metric (``stereo_score`` over ``stereo_pairs``) counts the
    items its count metric sums, not every item: a leaf's bootstrap stderr over a handful of
    such items is often NaN (a resample that draws none of them), which the group no longer inherits.
    """
    leaves = group_leaves(group, task_metrics)
    items = int(sum(leaf.get("sample_len", 0) for leaf in leaves))
    counted = _pooled_ratio_metrics(group)
    for metric in _proportion_metrics(group):
        for f in _filters(metric, [group_metrics]):
            value = group_metrics.get(f"{metric},{f}")
            n = group_metrics.get(f"{counted[metric]},{f}") if metric in counted else items
            if _number(value) and _number(n):
                group_metrics[f"{metric}_stderr,{f}"] = percentage_stderr(value, int(n))
    return group_metrics


def pool(group, task_metrics: dict, group_metrics: dict) -> dict:
    """Replace ratio metrics by their exact pooled value and count metrics by their sum.

    For ``pooled_ratio_metrics: {metric: count_metric}`` in the group metadata, the
    group's ``metric`` is sum(v_i c_i) / sum(c_i) over the leaf tasks (v_i the leaf's
    value, c_i its count), with stderr sqrt(sum(c_i^2 se_i^2)) / sum(c_i); the group's
    ``count_metric`` is sum(c_i).
    """
    pooled = _pooled_ratio_metrics(group)
    if not pooled:
        return group_metrics
    leaves = group_leaves(group, task_metrics)
    for metric, count_metric in pooled.items():
        for f in _filters(count_metric, leaves):
            counts = [leaf.get(f"{count_metric},{f}") for leaf in leaves]
            counts = [c for c in counts if _number(c)]
            if counts:
                group_metrics[f"{count_metric},{f}"] = float(sum(counts))
                errors = [leaf.get(f"{count_metric}_stderr,{f}") for leaf in leaves if f"{count_metric},{f}" in leaf]
                if errors and all(_number(e) for e in errors):
                    group_metrics[f"{count_metric}_stderr,{f}"] = math.sqrt(sum(e * e for e in errors))
        for f in _filters(metric, leaves):
            used = []  # (value, count, stderr)
            for leaf in leaves:
                value, count = leaf.get(f"{metric},{f}"), leaf.get(f"{count_metric},{f}")
                if not _number(count) or count == 0 or not _number(value):
                    continue
                used.append((value, count, leaf.get(f"{metric}_stderr,{f}")))
            total = sum(c for _, c, _ in used)
            if total == 0:
                group_metrics[f"{metric},{f}"] = math.nan
                continue
            group_metrics[f"{metric},{f}"] = sum(v * c for v, c, _ in used) / total
            if all(_number(se) for _, _, se in used):
                group_metrics[f"{metric}_stderr,{f}"] = math.sqrt(sum((c * se) ** 2 for _, c, se in used)) / total
    return group_metrics


def pool_perplexities(group, task_metrics: dict, group_metrics: dict) -> dict:
    """For ``pooled_perplexity_metrics: {metric: token_count_metric}`` in the group metadata, the
    group's ``metric`` is the perplexity over every token of its leaves (not a mean of their
    perplexities) and its ``token_count_metric`` their sum."""
    pooled = group_metadata(group).get("pooled_perplexity_metrics")
    if not isinstance(pooled, dict):
        return group_metrics
    from lm_eval_bias.metrics.crows_pairs import pool_perplexity

    leaves = group_leaves(group, task_metrics)
    for metric, count_metric in pooled.items():
        for f in _filters(metric, leaves):
            used = [
                (leaf[f"{metric},{f}"], leaf.get(f"{count_metric},{f}", math.nan))
                for leaf in leaves
                if f"{metric},{f}" in leaf
            ]
            group_metrics[f"{metric},{f}"] = pool_perplexity([v for v, _ in used], [n for _, n in used])
            group_metrics[f"{count_metric},{f}"] = float(sum(n for _, n in used))
    return group_metrics


def leaf_items(leaf: dict) -> tuple:
    """The per-document items a leaf's metric values carry (``items`` of a value, e.g.
    :class:`lm_eval_bias.metrics.stereoset.ClusterMetric`); every metric of a leaf carries the same."""
    for key, value in leaf.items():
        if key.endswith(",none") and isinstance(getattr(value, "items", None), tuple):
            return value.items
    return ()


def aggregate_items(group, task_metrics: dict, group_metrics: dict) -> dict:
    """Group metrics recomputed from the items of every leaf task, where the harness's
    means of leaf values would be wrong (StereoSet's ICAT, its term-averaged ss and lms).

    For ``aggregate_items_with: "module:function"`` in the group metadata, each leaf task
    whose metric values carry the per-document items of their own aggregation (in the leaf
    metrics lm-eval passes to ``Group.aggregate``) contributes them, in leaf order, and
    ``function(items) -> {metric: value}`` sets ``metric,none``. With ``stderr_items_with:
    "module:function"`` too, ``function(items) -> {metric: stderr}`` (closed forms over the pooled
    items) sets ``metric_stderr,none`` where the leaves report a stderr (none with --bootstrap_iters 0).
    """
    metadata = group_metadata(group)
    target = metadata.get("aggregate_items_with")
    if not target:
        return group_metrics
    leaves = group_leaves(group, task_metrics)
    items = [item for leaf in leaves for item in leaf_items(leaf)]
    if items:
        values = _resolve(target)(items)
        group_metrics.update({f"{metric},none": value for metric, value in values.items()})
    if items and metadata.get("stderr_items_with"):
        for metric, stderr in _resolve(metadata["stderr_items_with"])(items).items():
            if any(isinstance(leaf.get(f"{metric}_stderr,none"), numbers.Real) for leaf in leaves):
                group_metrics[f"{metric}_stderr,none"] = stderr
    return group_metrics


def on_group(group_module) -> None:
    cls = group_module.Group
    original = cls.aggregate
    if getattr(original, _WRAPPED, False):
        return

    @functools.wraps(original)
    def aggregate(self, task_metrics):
        result = original(self, task_metrics)
        try:
            pooled = pool_percentages(self, task_metrics, pool(self, task_metrics, dict(result)))
            pooled = pool_perplexities(self, task_metrics, pooled)
            return aggregate_items(self, task_metrics, pooled)
        except Exception as exc:  # a group metric never silently changes definition to a plain mean
            from lm_eval_bias.errors import GroupMetricError

            raise GroupMetricError(
                f"pooled group metrics failed for group {getattr(self, 'name', '?')!r}: {type(exc).__name__}: {exc}; "
                "no results are written (LM_EVAL_BIAS_TRACEBACK=1 shows where)"
            ) from exc

    setattr(aggregate, _WRAPPED, True)
    cls.aggregate = aggregate


# ------------------------------------------------------------ standard errors


def on_metrics(metrics) -> None:
    """An aggregation that carries a closed-form stderr (``lm_eval_bias.metrics.stderr.with_stderr``)
    gets it from ``stderr_for_metric`` instead of a bootstrap or none; every other aggregation gets
    lm-eval's answer. Wrapped where it is defined, before ``lm_eval.evaluator_utils`` imports it."""
    original = metrics.stderr_for_metric
    if getattr(original, _WRAPPED, False):
        return

    @functools.wraps(original)
    def stderr_for_metric(metric, bootstrap_iters):
        from lm_eval_bias.metrics.stderr import closed_form_stderr

        own = closed_form_stderr(metric)
        if own is not None and bootstrap_iters > 0:  # 0: no stderr at all, as lm-eval does
            return own
        return original(metric, bootstrap_iters)

    setattr(stderr_for_metric, _WRAPPED, True)
    metrics.stderr_for_metric = stderr_for_metric


# ------------------------------------------------------------- request types


def model_args_keys(model_args) -> set:
    """The keys of ``model_args`` as ``simple_evaluate`` takes it (a dict, or a ``key=value,...`` string)."""
    if isinstance(model_args, dict):
        return set(model_args)
    if isinstance(model_args, str):
        from lm_eval_bias.model_wrappers.model_args import split_items

        return {item.partition("=")[0].strip() for item in split_items(model_args)}
    return set()


def _wrap_simple_evaluate(evaluator) -> None:
    """Before ``simple_evaluate`` loads the model: refuse ``--metadata`` keys our tasks do not read."""
    import inspect

    original = evaluator.simple_evaluate
    if getattr(original, _WRAPPED, False):
        return
    signature = inspect.signature(original)

    @functools.wraps(original)
    def simple_evaluate(*args, **kwargs):
        try:
            bound = signature.bind(*args, **kwargs).arguments
        except TypeError:
            bound = None  # the harness reports the bad call
        if bound is not None and bound.get("metadata"):
            from lm_eval_bias.protocol import check_metadata_keys

            tasks = bound.get("tasks") or []
            tasks = [tasks] if isinstance(tasks, str) else tasks
            check_metadata_keys(set(bound["metadata"]) - model_args_keys(bound.get("model_args")), tasks)
        return original(*args, **kwargs)

    setattr(simple_evaluate, _WRAPPED, True)
    evaluator.simple_evaluate = simple_evaluate


def on_cli_utils(cli_utils) -> None:
    """lm-eval's ``--model_args`` parser keeps the last of a key given twice (with a log line): refuse it."""
    action = getattr(cli_utils, "MergeDictAction", None)
    original = vars(action).get("__call__") if isinstance(action, type) else None
    if original is None or getattr(original, _WRAPPED, False):
        return

    @functools.wraps(original)
    def __call__(self, parser, namespace, values, option_string=None):
        if self.dest == "model_args" and values:
            from lm_eval_bias.model_wrappers.model_args import check_repeated, split_items

            items = [f"{key}={value}" for key, value in (getattr(namespace, self.dest, None) or {}).items()]
            for value in [values] if isinstance(values, str) else values:
                if isinstance(value, str) and not value.lstrip().startswith("{"):
                    items += split_items(value)
            check_repeated(items, option_string or "--model_args")
        return original(self, parser, namespace, values, option_string)

    setattr(__call__, _WRAPPED, True)
    action.__call__ = __call__


def on_evaluator(evaluator) -> None:
    """Before ``evaluate`` builds or scores anything, check that the model implements every
    task's request type (see :mod:`lm_eval_bias.request_types`); before ``simple_evaluate`` loads
    the model, check the ``--metadata`` keys."""
    import inspect

    _wrap_simple_evaluate(evaluator)
    original = evaluator.evaluate
    if getattr(original, _WRAPPED, False):
        return
    signature = inspect.signature(original)

    @functools.wraps(original)
    def evaluate(*args, **kwargs):
        try:
            bound = signature.bind(*args, **kwargs)
            lm, task_dict = bound.arguments.get("lm"), bound.arguments.get("task_dict")
            tasks = task_dict.get("tasks") if isinstance(task_dict, dict) else None
        except TypeError:
            tasks = None  # the harness reports the bad call
        if isinstance(tasks, dict):
            from lm_eval_bias.request_types import check_request_types

            check_request_types(lm, tasks)
        return original(*args, **kwargs)

    setattr(evaluate, _WRAPPED, True)
    evaluator.evaluate = evaluate
