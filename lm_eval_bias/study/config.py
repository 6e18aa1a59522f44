"""A study's YAML config, expanded into cells: one cell = one model × revision × compression × task.

    name: my_study
    output_dir: results/my_study          # relative to the working directory
    models:
      - id: EleutherAI/pythia-70m-deduped # Hub id or local folder (`pretrained=`)
        name: pythia-70m                  # label in tables and plots (default: the id)
        revisions: step1000..step143000:7000
        # optional: size (parameters, for plot order), model_args ({dtype: float32, ...}),
        # model_type (default quantized_hf), teacher (another model's name), resources
    compressions:                          # any quantized_hf quantization with its options
      - none
      - dynamic_int8
      - {quantization: rtn, bits: [8, 4, 3], group_size: 128}   # a list expands to one per value
    tasks: [crows_pairs_bias, {task: lambada_openai, limit: 500}, [seat_bias_weat6, seat_bias_weat7]]
    # a list is one cell running several tasks (one model load for all of them)
    batch_size: 16
    device: cpu
    limit: null

String values may use ${VAR} and ${VAR:-default}; they are expanded from the environment
when the config is read, so the expanded value (a model folder, say) is part of the cell.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lm_eval_bias.errors import BiasError
from lm_eval_bias.model_wrappers.quantizers.config import QuantizationError, compression_label
from lm_eval_bias.study.cell import Cell

TOP_LEVEL_KEYS = {
    "name",
    "output_dir",
    "models",
    "revisions",
    "compressions",
    "tasks",
    "batch_size",
    "device",
    "limit",
    "num_fewshot",
    "bootstrap_iters",
    "metadata",
    "resources",
    "description",
}
MODEL_KEYS = {
    "id",
    "pretrained",
    "name",
    "revisions",
    "size",
    "model_args",
    "model_type",
    "teacher",
    "teacher_revision",
    "resources",
    "compressions",
}
TASK_KEYS = {"task", "limit", "num_fewshot", "batch_size", "metadata"}
DEFAULT_BOOTSTRAP_ITERS = 1000
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_RANGE = re.compile(r"^(?P<prefix>[^\d.]*)(?P<start>\d+)\.\.(?P<prefix2>[^\d.]*)(?P<stop>\d+):(?P<step>\d+)$")


class StudyConfigError(BiasError, ValueError):
    """The study config cannot be expanded; the message names the offending entry."""


@dataclass
class Study:
    name: str
    output_dir: Path
    cells: list[Cell]
    source: dict[str, Any] = field(default_factory=dict)  # the config after ${VAR} expansion

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(task for cell in self.cells for task in cell.task.split(",")))


# ------------------------------------------------------------------ small parsers


def expand_env(value: Any, where: str = "config") -> Any:
    """${VAR} / ${VAR:-default} in every string of a parsed YAML document."""
    if isinstance(value, dict):
        return {key: expand_env(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [expand_env(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if os.environ.get(name):
            return os.environ[name]
        if default is not None:
            return default
        raise StudyConfigError(
            f"{where}: environment variable {name} is not set (write ${{{name}:-default}} for a default)."
        )

    return _ENV.sub(substitute, value)


def expand_revisions(spec: Any, where: str = "revisions") -> list[str | None]:
    """A name, a range `step1000..step143000:7000` (stop included when on the grid), or a list of both.

    None (or an empty list) means the default branch.
    """
    if spec is None:
        return [None]
    items = spec if isinstance(spec, list) else [spec]
    revisions: list[str | None] = []
    for item in items:
        text = str(item).strip()
        if ".." not in text:
            revisions.append(text or None)
            continue
        match = _RANGE.match(text)
        if not match or (match["prefix2"] and match["prefix2"] != match["prefix"]):
            raise StudyConfigError(
                f"{where}: {text!r} is not a range like step1000..step143000:7000 (PREFIX START..STOP:STEP)."
            )
        start, stop, step = int(match["start"]), int(match["stop"]), int(match["step"])
        if step < 1 or stop < start:
            raise StudyConfigError(f"{where}: {text!r} needs STEP >= 1 and STOP >= START.")
        revisions += [f"{match['prefix']}{value}" for value in range(start, stop + 1, step)]
    return list(dict.fromkeys(revisions)) or [None]


def expand_compression(entry: Any, where: str) -> list[tuple[str, dict[str, Any]]]:
    """One compression entry -> [(label, {"quantization": method, option: value, ...}), ...].

    Options given as lists expand to their product; `name` may use {option} placeholders.
    """
    if isinstance(entry, str):
        entry = {"quantization": entry}
    if not isinstance(entry, dict) or "quantization" not in entry:
        raise StudyConfigError(f"{where}: expected a method name or a mapping with `quantization:`, got {entry!r}.")
    entry = dict(entry)
    name = entry.pop("name", None)
    method = str(entry.pop("quantization"))
    keys = sorted(entry)
    choices = [entry[key] if isinstance(entry[key], list) else [entry[key]] for key in keys]
    expanded = []
    for values in itertools.product(*choices):
        _check_options(method, dict(zip(keys, values)), where)
        settings = {"quantization": method, **dict(zip(keys, values))}
        label = name.format(**settings) if name else compression_label(settings)
        expanded.append((label, settings))
    return expanded


def _check_options(method: str, options: dict[str, Any], where: str) -> None:
    """Parse the options into the method's config now, so a bad value fails the config, not a cell."""
    from lm_eval_bias.model_wrappers.quantizers.auto import METHODS, quantizer_class

    if method not in METHODS:
        raise StudyConfigError(f"{where}: unknown quantization {method!r}; valid: {', '.join(METHODS)}.")
    try:
        quantizer_class(method).config_class.from_options(options, method=method)
    except QuantizationError as error:
        raise StudyConfigError(f"{where}: {error}") from None


def _task_entries(spec: Any) -> list[dict[str, Any]]:
    if not spec:
        raise StudyConfigError("tasks: the config lists no tasks.")
    entries = []
    for index, item in enumerate(spec if isinstance(spec, list) else [spec]):
        entry = dict(item) if isinstance(item, dict) else {"task": item}
        unknown = set(entry) - TASK_KEYS
        if not entry.get("task") or unknown:
            raise StudyConfigError(
                f"tasks[{index}]: expected a task name or {{task: NAME, limit: N, ...}}; got {item!r}."
            )
        if isinstance(entry["task"], list):  # several tasks in one cell: one model load for all of them
            entry["task"] = ",".join(str(task) for task in entry["task"])
        entries.append(entry)
    return entries


# ------------------------------------------------------------------ the config


def load_study(path: str | Path, output_dir: str | Path | None = None) -> Study:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"study config {path} does not exist")
    with path.open(encoding="utf-8") as f:
        raw = yaml.safe_load(f) or {}
    return expand_study(raw, default_name=path.stem, output_dir=output_dir)


def expand_study(raw: dict[str, Any], default_name: str = "study", output_dir: str | Path | None = None) -> Study:
    if not isinstance(raw, dict):
        raise StudyConfigError("the study config must be a mapping")
    unknown = set(raw) - TOP_LEVEL_KEYS
    if unknown:
        raise StudyConfigError(
            f"unknown top-level keys: {', '.join(sorted(unknown))}; valid: {', '.join(sorted(TOP_LEVEL_KEYS))}."
        )
    config = expand_env(raw)
    name = str(config.get("name") or default_name)
    target = output_dir or config.get("output_dir") or f"results/{name}"
    models = config.get("models") or []
    if not models:
        raise StudyConfigError("models: the config lists no models.")
    compressions = _compressions(config.get("compressions"), "compressions")
    tasks = _task_entries(config.get("tasks"))
    names = [_model_name(model, index) for index, model in enumerate(models)]
    if len(set(names)) != len(names):
        raise StudyConfigError(f"models: names must be distinct, got {names}.")

    cells = []
    for index, model in enumerate(models):
        where = f"models[{index}]"
        if not isinstance(model, dict):
            model = {"id": model}
        unknown = set(model) - MODEL_KEYS
        if unknown:
            raise StudyConfigError(
                f"{where}: unknown keys {', '.join(sorted(unknown))}; valid: {', '.join(sorted(MODEL_KEYS))}."
            )
        teacher = model.get("teacher")
        if teacher is not None and teacher not in names:
            raise StudyConfigError(
                f"{where}: teacher {teacher!r} is not the name of another model ({', '.join(names)})."
            )
        model_type = model.get("model_type", "quantized_hf")
        for revision in expand_revisions(model.get("revisions", config.get("revisions")), f"{where}.revisions"):
            own = _compressions(model["compressions"], f"{where}.compressions") if "compressions" in model else None
            for label, settings in own or compressions:
                if model_type != "quantized_hf" and settings["quantization"] != "none":
                    raise StudyConfigError(f"{where}: model_type {model_type} cannot apply quantization {label}.")
                for task in tasks:
                    cells.append(_cell(config, model, names[index], revision, label, settings, task))
    return Study(name=name, output_dir=Path(target), cells=cells, source=config)


def _compressions(entries: Any, where: str) -> list[tuple[str, dict]]:
    """(label, settings) of every compression setting a list expands to; ``none`` where the list is absent."""
    if entries is not None and not entries:
        raise StudyConfigError(
            f"{where}: the config lists no compressions; list at least one (e.g. - none), or leave the key out "
            "to run the uncompressed models only."
        )
    expanded = [
        item
        for index, entry in enumerate(entries or ["none"])
        for item in expand_compression(entry, f"{where}[{index}]")
    ]
    labels = [label for label, _ in expanded]
    if len(set(labels)) != len(labels):
        raise StudyConfigError(f"{where}: two settings share a name ({labels}); give each a distinct `name`.")
    return expanded


def _model_name(model: Any, index: int) -> str:
    if not isinstance(model, dict):
        return str(model)
    if not (model.get("id") or model.get("pretrained")):
        raise StudyConfigError(f"models[{index}]: needs `id` (a Hub id or a local folder).")
    return str(model.get("name") or model.get("id") or model.get("pretrained"))


def _cell(config, model, name, revision, label, settings, task) -> Cell:
    compression = (
        {}
        if settings["quantization"] == "none" and model.get("model_type", "quantized_hf") != "quantized_hf"
        else settings
    )
    resources = {"num_cpus": 1, "num_gpus": 1 if str(config.get("device", "cpu")).startswith("cuda") else 0}
    resources.update(config.get("resources") or {})
    resources.update(model.get("resources") or {})
    return Cell(
        model=str(model.get("id") or model.get("pretrained")),
        name=name,
        revision=revision,
        compression_name=label,
        compression=compression,
        task=str(task["task"]),
        model_type=str(model.get("model_type", "quantized_hf")),
        model_args=dict(model.get("model_args") or {}),
        teacher=model.get("teacher"),
        teacher_revision=model.get("teacher_revision"),
        size=float(model["size"]) if model.get("size") is not None else None,
        batch_size=task.get("batch_size", config.get("batch_size", 16)),
        device=str(config.get("device", "cpu")),
        limit=task.get("limit", config.get("limit")),
        num_fewshot=task.get("num_fewshot", config.get("num_fewshot")),
        bootstrap_iters=int(config.get("bootstrap_iters", DEFAULT_BOOTSTRAP_ITERS)),
        metadata={**(config.get("metadata") or {}), **(task.get("metadata") or {})},
        resources=resources,
    )
