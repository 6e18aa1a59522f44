"""Read any lm-eval results directory: results JSONs, their logged samples, and who ran what.

A run is one results file (`results_<date>.json`, or `NAME_<date>.json` from
`--output_path NAME.json`) with the `samples_<task>_<date>.jsonl` files written next to it.
Its identity, (model, revision, compression), comes from the `cell.json` a study writes
beside it when there is one, and otherwise from the results' own `config`: `model_args`
(pretrained, revision) and the compression record (`config.quantization`, see
docs/compression.md) that `quantized_hf` writes: its label, method and nominal weight bits.
A run without that record (a stock `hf` model) is the uncompressed checkpoint.

A cell may be made of several runs holding different tasks: a study's second task entry adds a
run next to a finished one (docs/studies.md, "Adding a task to a finished study"), and two
`lm_eval` calls into one folder do the same. They are not merged: everything downstream is keyed
by (model, revision, compression, task, metric) — `metric_frame` keeps the latest run of each
such key, and the paired tests, capability verdicts and flips read the samples of the run that
holds the task — so a cell's runs read as one run holding all of their tasks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lm_eval_bias.leaderboard import holistic_bias
from lm_eval_bias.leaderboard.items import ItemKey, Score, item_key, sample_value, score_records
from lm_eval_bias.model_wrappers.quantizers.config import QuantizationRecord
from lm_eval_bias.results_files import UnreadableFileError, iter_jsonl, read_json

DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(?:\.\d+)?")
STEP = re.compile(r"(?:^|[^a-z])step[-_]?(\d+)", re.IGNORECASE)
Z95 = 1.959963984540054
SIZE = re.compile(r"(?:^|[-_/])(\d+(?:\.\d+)?)([mb])(?:$|[-_])", re.IGNORECASE)


def _parse_model_args(model_args: Any) -> dict[str, Any]:
    if isinstance(model_args, dict):
        return dict(model_args)
    pairs = [item.split("=", 1) for item in str(model_args or "").split(",") if "=" in item]
    return {key.strip(): value.strip() for key, value in pairs}


def _model_label(pretrained: str) -> str:
    if pretrained.startswith(("/", "./", "../", "~")):
        return Path(pretrained).name
    return pretrained


def model_size(label: str) -> float | None:
    """'pythia-70m-deduped' -> 7e7, 'gemma-3-270m' -> 2.7e8, else None.

    Args:
        label: a model name.

    Returns:
        The parameter count its name states (a number followed by m or b, between separators), or None.
    """
    match = SIZE.search(label)
    return float(match[1]) * (1e6 if match[2].lower() == "m" else 1e9) if match else None


@dataclass
class Run:
    """One lm-eval results file and who made it.

    Attributes:
        path: the results JSON.
        data: its parsed content.
        model: the model's label (the cell.json label, else the name or folder name of ``pretrained``).
        revision: the model revision (``"main"`` when none is recorded).
        compression: the compression label (``"none"``: uncompressed).
        record: the compression record (``config.quantization``; the uncompressed record when absent).
        teacher: for a distilled student, its teacher's label, else None.
        teacher_revision: the teacher's revision, if recorded.
        size: the parameter count (from cell.json, else from the model's name), or None.
        samples: leaf task -> its ``samples_<task>_<date>.jsonl`` file next to ``path``.
    """

    path: Path
    data: dict[str, Any]
    model: str
    revision: str
    compression: str
    record: QuantizationRecord
    teacher: str | None = None
    teacher_revision: str | None = None
    size: float | None = None
    samples: dict[str, Path] = field(default_factory=dict)
    _items: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False)

    @property
    def key(self) -> tuple[str, str, str]:
        """The run's cell: (model, revision, compression)."""
        return (self.model, self.revision, self.compression)

    @property
    def date(self) -> str:
        """The run's date: the last date in the file name, else the JSON's ``date``, else ""."""
        match = DATE.findall(self.path.name)
        return match[-1] if match else str(self.data.get("date", ""))

    @property
    def method(self) -> str:
        """The compression method, from the compression record."""
        return self.record.method

    @property
    def bits(self) -> float:
        """Nominal weight bits, from the compression record (NaN where the method has none)."""
        bits = self.record.weight_bits
        return float(bits) if bits is not None else math.nan

    @property
    def sparsity(self) -> float:
        """Fraction of weights pruned (N:M: 1 - N/M), from the compression record (NaN for unpruned runs)."""
        sparsity = self.record.details.get("target_sparsity")
        return float(sparsity) if sparsity is not None else math.nan

    @property
    def step(self) -> float:
        """The training step a revision such as ``step143000`` names (NaN when it names none)."""
        match = STEP.search(self.revision)
        return float(match[1]) if match else math.nan

    def subtasks(self, task: str) -> list[str]:
        """The leaf tasks whose samples make up `task` (itself when it is not a group).

        Args:
            task: a task or group name of the results.

        Returns:
            The leaf task names, groups expanded recursively, in the results' order.
        """
        members = self.data.get("group_subtasks", {}).get(task)
        if not members:
            return [task]
        return [leaf for member in members for leaf in self.subtasks(member)]

    def top_level_tasks(self) -> list[str]:
        """The tasks and groups of the results that are no group's member.

        Returns:
            Their names, in the results' order.
        """
        grouped = {member for members in self.data.get("group_subtasks", {}).values() for member in members}
        return [task for task in self.data.get("results", {}) if task not in grouped]

    def metrics(self, task: str) -> dict[str, tuple[float, float, float, float]]:
        """metric (",filter" kept unless it is "none") -> (value, stderr, ci_low, ci_high).

        The interval is the task's own METRIC_ci_low / METRIC_ci_high when it reports them
        (StereoSet's bootstrap interval of ss), else value ± 1.96 stderr; NaN when unknown.

        Args:
            task: a task or group name of the results.

        Returns:
            Metric label -> ``(value, stderr, ci_low, ci_high)`` as floats, for every numeric metric
            the task reports (none when the task is absent).
        """
        values = {}
        entry = self.data.get("results", {}).get(task, {})
        for key, value in entry.items():
            if "," not in key or "_stderr," in key or not _is_number(value):
                continue
            name, filter_name = key.split(",", 1)
            label = name if filter_name == "none" else f"{name},{filter_name}"
            stderr = entry.get(f"{name}_stderr,{filter_name}")
            stderr = float(stderr) if _is_number(stderr) else math.nan
            low, high = (entry.get(f"{name}_ci_{end},{filter_name}") for end in ("low", "high"))
            if not (_is_number(low) and _is_number(high)):
                low, high = value - Z95 * stderr, value + Z95 * stderr
            values[label] = (float(value), stderr, float(low), float(high))
        return values

    def item_values(self, task: str, metric: str) -> dict[ItemKey, float]:
        """(leaf task, doc_id, doc_hash) -> the metric's per-sample value, from the logged samples.

        Args:
            task: a task or group name (its leaf tasks' samples are read).
            metric: the metric, with or without its ``,filter`` suffix.

        Returns:
            Item (``items.item_key``) -> the value as a float, for the samples holding one
            (``items.sample_value``: StereoSet's outcome records read as pro for ss and related for lms,
            BBQ's as correct or chose-biased over one context condition's items). HolisticBias: its
            templates or descriptors, not sentences (``holistic_bias.item_values``).
        """
        name = metric.split(",", 1)[0]
        grouped = holistic_bias.item_values(self.subtasks(task), self._samples, name)  # units: templates
        if grouped is not None:
            return grouped
        return self.per_item(task, lambda leaf, sample: sample_value(leaf, name, sample.get(name)))

    def item_records(self, task: str, metric: str) -> tuple[dict[ItemKey, tuple[float, ...]], Score] | None:
        """For a metric that is a score of its items' totals (BBQ's bias scores): item -> its record, and the score.

        Args:
            task: a task or group name.
            metric: the metric, with or without its ``,filter`` suffix.

        Returns:
            ``(item -> record, score from totals)`` (``items.score_records``), or None for a metric that
            is a mean of its item values (``item_values``).
        """
        name = metric.split(",", 1)[0]
        found = score_records(self.subtasks(task), name)
        if found is None:
            return None
        read, score = found
        return self.per_item(task, lambda leaf, sample: read(sample.get(name))), score

    def per_item(self, task: str, read: Callable[[str, dict[str, Any]], float | None]) -> dict[ItemKey, float]:
        """Item -> what `read` makes of its logged sample. The samples files are read once and kept.

        Args:
            task: a task or group name (its leaf tasks' samples are read).
            read: (leaf task, sample) -> the item's value, or None for an item that has none.

        Returns:
            Item (``items.item_key``) -> the value, for the samples where ``read`` gives one.
        """
        values = {}
        for leaf in self.subtasks(task):
            for sample in self._samples(leaf):
                value = read(leaf, sample)
                if value is not None:
                    values[item_key(leaf, sample)] = value
        return values

    def _samples(self, task: str) -> list[dict[str, Any]]:
        if task not in self._items:
            path = self.samples.get(task)
            rows = []
            if path is not None:
                rows = list(iter_jsonl(path))  # a line that does not parse: an error naming the file and line
            self._items[task] = rows
        return self._items[task]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _labels(path: Path, root: Path) -> dict[str, Any]:
    for folder in [path.parent, *path.parent.parents]:
        record = folder / "cell.json"
        if record.is_file():
            data = read_json(record)
            return data.get("labels", {}) if isinstance(data, dict) else {}
        if folder == root:
            break
    return {}


def _samples_next_to(path: Path) -> dict[str, Path]:
    dates = DATE.findall(path.name)
    pattern = f"samples_*_{dates[-1]}.jsonl" if dates else "samples_*.jsonl"
    found = {}
    for sample_path in sorted(path.parent.glob(pattern)):
        task = sample_path.name[len("samples_") : -len(".jsonl")]
        found[task[: -len(dates[-1]) - 1] if dates else task] = sample_path
    return found


def read_run(path: Path, root: Path | None = None) -> Run | None:
    """Read one results file.

    Args:
        path: a JSON file.
        root: the folder up to which a ``cell.json`` is looked for, from ``path``'s folder upwards
            (default: ``path``'s own folder).

    Returns:
        The run; None when ``path`` is no lm-eval results file (parsed: no ``results`` and ``config``;
        unparsed: a name neither lm-eval's ``results_*.json`` nor dated ``NAME_<date>.json``).

    Raises:
        UnreadableFileError: ``path`` looks like a results file (by its name) but does not parse whole, or
            the ``cell.json`` beside it does not.
        ValueError: its ``config.quantization`` is present but not a compression record.
    """
    try:
        data = read_json(path)
    except UnreadableFileError:
        if path.name.startswith("results") or DATE.search(path.name):
            raise
        return None
    if not isinstance(data, dict) or "results" not in data or "config" not in data:
        return None
    config = data.get("config") or {}
    args = _parse_model_args(config.get("model_args"))
    labels = _labels(path, root or path.parent)
    record = _compression_record(config, path)
    model = labels.get("model") or _model_label(
        str(args.get("pretrained") or data.get("model_name") or config.get("model"))
    )
    distillation = config.get("distillation") if isinstance(config.get("distillation"), dict) else {}
    teacher = labels.get("teacher") or (
        _model_label(str(distillation["teacher"])) if distillation.get("teacher") else None
    )
    return Run(
        path=path,
        data=data,
        model=model,
        revision=str(labels.get("revision") or args.get("revision") or "main"),
        compression=labels.get("compression") or record.label,
        record=record,
        teacher=teacher,
        teacher_revision=labels.get("teacher_revision") or distillation.get("teacher_revision"),
        size=labels.get("size") or model_size(model),
        samples=_samples_next_to(path),
    )


def _compression_record(config: dict[str, Any], path: Path) -> QuantizationRecord:
    """The run's `config.quantization` record; none at all means the uncompressed checkpoint."""
    if config.get("quantization") is None:
        return QuantizationRecord.uncompressed()
    return QuantizationRecord.from_dict(config["quantization"], where=f"{path}: config.quantization")


def metric_frame(runs: list[Run], subtasks: bool = False) -> pd.DataFrame:
    """One row per (run, task, metric): value, stderr and what the run was. Later runs of the same cell win.

    Args:
        runs: the runs (``loading.load_runs``); the ``run`` column indexes this list.
        subtasks: every task and group the results hold, instead of the top-level ones only.

    Returns:
        Columns ``run``, ``model``, ``revision``, ``compression``, ``method``, ``bits``, ``sparsity``,
        ``step``, ``size``, ``teacher``, ``task``, ``metric``, ``value``, ``stderr``, ``ci_low``,
        ``ci_high``, ``date``; for each (model, revision, compression, task, metric) only the row of
        the latest run by date, ordered by date.
    """
    rows = []
    for index, run in enumerate(runs):
        tasks = list(run.data.get("results", {})) if subtasks else run.top_level_tasks()
        for task in tasks:
            for metric, (value, stderr, low, high) in run.metrics(task).items():
                rows.append(
                    {
                        "run": index,
                        "model": run.model,
                        "revision": run.revision,
                        "compression": run.compression,
                        "method": run.method,
                        "bits": run.bits,
                        "sparsity": run.sparsity,
                        "step": run.step,
                        "size": run.size or math.nan,
                        "teacher": run.teacher,
                        "task": task,
                        "metric": metric,
                        "value": value,
                        "stderr": stderr,
                        "ci_low": low,
                        "ci_high": high,
                        "date": run.date,
                    }
                )
    columns = [
        "run",
        "model",
        "revision",
        "compression",
        "method",
        "bits",
        "sparsity",
        "step",
        "size",
        "teacher",
        "task",
        "metric",
        "value",
        "stderr",
        "ci_low",
        "ci_high",
        "date",
    ]
    frame = pd.DataFrame(rows, columns=columns)
    if frame.empty:
        return frame
    frame = frame.sort_values("date").drop_duplicates(
        ["model", "revision", "compression", "task", "metric"], keep="last"
    )
    return frame.reset_index(drop=True)
