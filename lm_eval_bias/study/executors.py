"""Where cells run: in this process one after another, or as Ray tasks.

Both call `run_cell` with the same cell and output directory, so they write the same
directories; an executor only decides where and when. Each yields one `Outcome` per
cell as it finishes.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lm_eval_bias.errors import BiasError
from lm_eval_bias.study.cell import Cell, Outcome, run_cell

RAY_INSTALL = "pip install ray  (on a CPU-only machine add -c constraints/cpu-torch.txt so that torch stays as it is)"
# environment the cells read, handed to Ray workers (which may run on other machines)
FORWARDED_ENV_PREFIXES = ("HF_", "LM_EVAL_BIAS_", "TRANSFORMERS_", "TOKENIZERS_", "CUDA_VISIBLE_DEVICES")
# times Ray runs a cell again when the worker or node running it dies (a lost machine, an OOM kill); a cell that
# fails in Python is not retried (run_cell returns its failure). Safe because a cell is written under .tmp/ and
# renamed into place: a half-written attempt never counts as finished.
MAX_RETRIES = 3


class ExecutorUnavailable(BiasError, ValueError):
    """The executor cannot run here (Ray not installed)."""


class LocalExecutor:
    """In-process and sequential: the default."""

    name = "local"

    def map(self, cells: list[Cell], output_dir: Path) -> Iterator[Outcome]:
        for cell in cells:
            yield run_cell(cell, output_dir)


def _run_cell_remote(cell: dict[str, Any], output_dir: str) -> Outcome:
    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    return run_cell(Cell.from_dict(cell), output_dir)


class RayExecutor:
    """One Ray task per cell, each with the cell's resources (num_cpus, num_gpus, memory, ...).

    `address` connects to a running cluster ("auto", "ray://head:10001", ...); without one
    a local Ray is started for the study and stopped after it. On a cluster of several
    machines the output directory must be on a filesystem every worker sees. A cell whose
    node is lost is run again elsewhere, up to `max_retries` times.
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, max_retries: int = MAX_RETRIES) -> None:
        if importlib.util.find_spec("ray") is None:
            raise ExecutorUnavailable(f"--executor ray needs Ray: {RAY_INSTALL}")
        self.address = address
        self.num_cpus = num_cpus
        self.max_retries = max_retries

    def map(self, cells: list[Cell], output_dir: Path) -> Iterator[Outcome]:
        import ray

        env = {key: value for key, value in os.environ.items() if key.startswith(FORWARDED_ENV_PREFIXES)}
        started_here = not ray.is_initialized()
        if started_here:
            kwargs: dict[str, Any] = {
                "address": self.address,
                "runtime_env": {"env_vars": env},
                "log_to_driver": False,
                "logging_level": logging.WARNING,
            }
            if self.address is None:
                kwargs.update(include_dashboard=False, num_cpus=self.num_cpus)
            ray.init(**kwargs)
        try:
            task = ray.remote(max_retries=self.max_retries)(_run_cell_remote)
            pending = {}
            capacity = ray.cluster_resources() if started_here and self.address is None else {}
            for cell in cells:
                options = {key: value for key, value in cell.resources.items() if value is not None}
                short = _infeasible(options, capacity)
                if short:  # a local Ray cannot grow: such a task would wait forever
                    yield Outcome(cell.hash, cell.description, "failed", reason=f"Ray: the cell asks for {short}")
                    continue
                ref = task.options(**options).remote(cell.settings(), str(Path(output_dir).resolve()))
                pending[ref] = cell
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    cell = pending.pop(ref)
                    try:
                        yield ray.get(ref)
                    except Exception as error:  # noqa: BLE001 - a worker died; the others go on
                        reason = f"Ray: {type(error).__name__}: {error}".splitlines()[0][:300]
                        yield Outcome(cell.hash, cell.description, "failed", reason=reason)
        finally:
            if started_here:
                ray.shutdown()


def _infeasible(options: dict[str, Any], capacity: dict[str, float]) -> str:
    names = {"num_cpus": "CPU", "num_gpus": "GPU"}
    for key, resource in names.items():
        if capacity and float(options.get(key) or 0) > capacity.get(resource, 0.0):
            return f"{options[key]} {resource}s; this local Ray has {capacity.get(resource, 0.0):g}"
    return ""


EXECUTORS = {"local": LocalExecutor, "ray": RayExecutor}
