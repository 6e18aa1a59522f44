"""One cell of a study: its settings, its stable hash, and the directory it is written to.

A cell's directory is OUTPUT_DIR/<hash>, where the hash covers every setting of the cell
(see `Cell.settings`). It holds what `lm_eval --output_path DIR --log_samples` writes
(DIR/<model>/results_<date>.json and samples_<task>_<date>.jsonl) plus `cell.json`, the
cell's settings and labels, and the size and SHA-256 of every file beside it. It is written
under OUTPUT_DIR/.tmp/ and renamed into place as the very last step, so a directory named by a
hash is always a cell that finished; it counts as finished while its files still match what
`cell.json` records (`integrity`). A damaged one is run again, the old folder moved to
OUTPUT_DIR/.damaged/.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import socket
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lm_eval_bias.study import resume
from lm_eval_bias.study.integrity import FILES_KEY, cell_problem, file_record

CELL_FORMAT = 1
CELL_RECORD = "cell.json"
TMP_DIR = ".tmp"
FAILED_DIR = ".failed"
DAMAGED_DIR = ".damaged"
HASH_LENGTH = 16
# executor settings: they decide where a cell runs, never what it computes
NOT_HASHED = ("resources",)


@dataclass(frozen=True)
class Cell:
    model: str
    name: str
    revision: str | None
    compression_name: str
    compression: dict[str, Any]
    task: str  # a task or group name; several, comma-separated, run in one cell
    model_type: str = "quantized_hf"
    model_args: dict[str, Any] = field(default_factory=dict)
    teacher: str | None = None
    teacher_revision: str | None = None
    size: float | None = None
    batch_size: int | str = 16
    device: str = "cpu"
    limit: int | float | None = None
    num_fewshot: int | None = None
    bootstrap_iters: int = 1000
    metadata: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)

    def settings(self) -> dict[str, Any]:
        """Everything the hash covers: the whole cell except where it runs."""
        data = asdict(self)
        for key in NOT_HASHED:
            data.pop(key)
        return {"cell_format": CELL_FORMAT, **data}

    @property
    def hash(self) -> str:
        canonical = json.dumps(self.settings(), sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:HASH_LENGTH]

    @property
    def description(self) -> str:
        return f"{self.name} @ {self.revision or 'main'} · {self.compression_name} · {self.task}"

    def model_args_for_harness(self) -> dict[str, Any]:
        args = {"pretrained": self.model, **self.model_args, **self.compression}
        if self.revision is not None:
            args["revision"] = self.revision
        return args

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cell:
        data = {key: value for key, value in data.items() if key != "cell_format"}
        return cls(**data)


@dataclass
class Outcome:
    hash: str
    description: str
    status: str  # "done" | "skipped" | "failed"
    reason: str = ""
    seconds: float = 0.0


# ------------------------------------------------------------------ directory states


def cell_dir(output_dir: str | Path, cell: Cell) -> Path:
    return Path(output_dir) / cell.hash


def cell_state(output_dir: str | Path, cell: Cell) -> tuple[str, str]:
    """("finished", ""), ("to run", "") when it has no folder, or ("damaged", one line naming the bad file)."""
    folder = cell_dir(output_dir, cell)
    if not folder.exists():
        return "to run", ""
    problem = cell_problem(folder, CELL_RECORD)
    return ("damaged", problem) if problem else ("finished", "")


def is_finished(output_dir: str | Path, cell: Cell) -> bool:
    return cell_state(output_dir, cell)[0] == "finished"


def failure_log(output_dir: str | Path, cell: Cell) -> Path:
    return Path(output_dir) / FAILED_DIR / f"{cell.hash}.log"


def remove_stale_tmp(output_dir: str | Path) -> list[Path]:
    """Drop temporary cell directories left by runs on this host that are no longer alive."""
    removed = []
    host = socket.gethostname()
    for path in sorted((Path(output_dir) / TMP_DIR).glob("*")):
        parts = path.name.split(".")
        if len(parts) == 4 and parts[1] == host and parts[2].isdigit() and _alive(int(parts[2])):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def remove_tmp_of_finished(output_dir: str | Path, cells: list[Cell]) -> list[Path]:
    """Drop the temporary directories of cells that are finished now: what a runner lost mid-cell (a Ray node
    that died, a killed process on another machine) left behind after the cell was run again elsewhere."""
    leftovers = sorted((Path(output_dir) / TMP_DIR).glob("*"))
    left = {path.name.split(".")[0] for path in leftovers}
    finished = {cell.hash for cell in cells if cell.hash in left and is_finished(output_dir, cell)}
    removed = [path for path in leftovers if path.name.split(".")[0] in finished]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ------------------------------------------------------------------ running one cell

_TASK_INDEX: dict[bool, Any] = {}


def task_index(defaults: bool = True):
    """One TaskManager per process and kind: indexing every harness task takes seconds, so cells
    share it. defaults=False indexes only lm-eval-bias's own tasks (in a fraction of the time):
    they count as lm-eval defaults, so they are asked for explicitly by their folder."""
    if defaults not in _TASK_INDEX:
        from lm_eval.tasks import TaskManager

        from lm_eval_bias.catalog import with_our_tasks

        _TASK_INDEX[defaults] = TaskManager(include_defaults=defaults, include_path=with_our_tasks())
    return _TASK_INDEX[defaults]


def task_manager(metadata: dict[str, Any], tasks: list[str]):
    """An index that knows `tasks`, with this cell's task metadata (what simple_evaluate would build)."""
    from lm_eval.tasks import TaskManager

    ours = task_index(defaults=False)
    base = ours if set(tasks) <= set(ours.all_tasks) else task_index(defaults=True)
    if not hasattr(base, "_factory"):  # another harness layout: build a fresh one
        return TaskManager(metadata=metadata)
    from lm_eval.tasks._factory import TaskFactory

    manager = copy.copy(base)
    manager.metadata = metadata
    manager._factory = TaskFactory(meta=metadata)
    return manager


def evaluate_cell(cell: Cell, tracker, use_cache: str | None = None) -> dict[str, Any]:
    """The harness run of one cell, samples logged (lm-eval's Python API); with ``use_cache``, through
    lm-eval's response cache at that path (``resume``)."""
    import lm_eval

    model_args = cell.model_args_for_harness()
    tasks = cell.task.split(",")
    results = lm_eval.simple_evaluate(
        model=cell.model_type,
        model_args=model_args,
        tasks=tasks,
        num_fewshot=cell.num_fewshot,
        batch_size=cell.batch_size,
        device=cell.device,
        limit=cell.limit,
        bootstrap_iters=cell.bootstrap_iters,
        log_samples=True,
        evaluation_tracker=tracker,
        use_cache=use_cache,
        metadata=cell.metadata or None,
        task_manager=task_manager({**model_args, **cell.metadata}, tasks),
    )
    if results is None:  # only non-zero ranks of a distributed run return None
        raise RuntimeError("lm-eval returned no results")
    return results


def save_outputs(tracker, results: dict[str, Any]) -> None:
    """What `lm_eval --output_path --log_samples` writes, checked (the tracker only logs write errors)."""
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    for task_name in results["configs"]:
        tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
    folder = Path(tracker.output_path) / str(tracker.general_config_tracker.model_name_sanitized)
    expected = [folder / f"results_{tracker.date_id}.json"]
    expected += [folder / f"samples_{task}_{tracker.date_id}.jsonl" for task in results["configs"]]
    missing = [str(path) for path in expected if not path.is_file()]
    if missing:
        raise OSError(f"lm-eval did not write {', '.join(missing)}")


def write_cell_record(
    folder: Path,
    cell: Cell,
    seconds: float,
    load_at_start: list[float] | None = None,
    attempts: list[list[float]] | None = None,
) -> None:
    import lm_eval

    from lm_eval_bias import __version__

    record = {
        "hash": cell.hash,
        "cell": cell.settings(),
        "labels": {
            "model": cell.name,
            "revision": cell.revision or "main",
            "compression": cell.compression_name,
            "task": cell.task,
            "teacher": cell.teacher,
            "teacher_revision": cell.teacher_revision,
            "size": cell.size,
        },
        "versions": {"lm_eval": getattr(lm_eval, "__version__", "unknown"), "lm_eval_bias": __version__},
        "seconds": round(seconds, 1),
        # [start, end] (epoch seconds) of each run of the cell: more than one when it resumed from the
        # responses of a run cut off (``resume``); "seconds" is their sum
        "attempts": [[round(start, 1), round(end, 1)] for start, end in attempts or []],
        # the host's load averages (1, 5, 15 minutes) as the cell started and ended: how shared the cores were
        "load": {"start": load_at_start, "end": _load_average()},
        FILES_KEY: file_record(folder, CELL_RECORD),  # what a finished cell must still hold (integrity)
    }
    (folder / CELL_RECORD).write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")


def _load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (OSError, AttributeError):  # unobtainable here (OSError), or no getloadavg at all (Windows)
        return None


def _commit(tmp: Path, final: Path, output_dir: Path, cell: Cell) -> bool:
    """Rename the written cell into place (atomic on one filesystem). False: another runner finished it first.
    A damaged cell folder in the way is moved to OUTPUT_DIR/.damaged/ first."""
    try:
        os.rename(tmp, final)
        return True
    except OSError:
        state, _ = cell_state(output_dir, cell)
        if state == "finished":
            return False
        if state != "damaged":
            raise
    aside = output_dir / DAMAGED_DIR / f"{cell.hash}.{time.strftime('%Y%m%dT%H%M%S')}.{uuid.uuid4().hex[:8]}"
    aside.parent.mkdir(parents=True, exist_ok=True)
    os.rename(final, aside)
    os.rename(tmp, final)
    return True


def run_cell(cell: Cell, output_dir: str | Path, evaluate: Callable | None = None) -> Outcome:
    """Run one cell into OUTPUT_DIR/<hash>, unless it is finished. Never raises for a failed run."""
    from lm_eval.loggers import EvaluationTracker

    output_dir = Path(output_dir)
    final = cell_dir(output_dir, cell)
    if is_finished(output_dir, cell):
        return Outcome(cell.hash, cell.description, "skipped")
    started, started_at, load_at_start = time.monotonic(), time.time(), _load_average()
    cache = resume.cache_folder(output_dir, cell.hash)  # an earlier attempt's responses, if it was cut off
    earlier = resume.begin_attempt(cache, started_at)
    tmp = output_dir / TMP_DIR / f"{cell.hash}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        tracker = EvaluationTracker(output_path=str(tmp))
        if evaluate is None:
            results = evaluate_cell(cell, tracker, use_cache=resume.responses_path(cache))
        else:
            results = evaluate(cell, tracker)
        save_outputs(tracker, results)
        seconds = time.monotonic() - started
        attempts = [*earlier, [started_at, started_at + seconds]]
        write_cell_record(tmp, cell, seconds + sum(end - start for start, end in earlier), load_at_start, attempts)
        committed = _commit(tmp, final, output_dir, cell)
        resume.finish(cache)  # finished, by this runner or by another one first
        if not committed:
            shutil.rmtree(tmp, ignore_errors=True)
            return Outcome(cell.hash, cell.description, "skipped")
    except BaseException as error:  # noqa: BLE001 - a failed cell must not stop the study
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(error, KeyboardInterrupt):
            raise
        log = failure_log(output_dir, cell)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(
            f"{cell.description}\n{json.dumps(cell.settings(), default=str)}\n\n{traceback.format_exc()}",
            encoding="utf-8",
        )
        reason = f"{type(error).__name__}: {error}".strip().splitlines()[0][:300]
        return Outcome(
            cell.hash, cell.description, "failed", reason=f"{reason} (log: {log})", seconds=time.monotonic() - started
        )
    failure_log(output_dir, cell).unlink(missing_ok=True)
    return Outcome(cell.hash, cell.description, "done", seconds=time.monotonic() - started)
