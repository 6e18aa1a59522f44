"""An unfinished cell's model responses, kept so that a cell cut off (a killed process, a machine that went
away) resumes from the requests it had scored instead of from its first.

They are lm-eval's own response cache (``simple_evaluate(use_cache=...)``, ``CachingLM``: one SQLite file,
keyed by request) in ``OUTPUT_DIR/.cache/<cell hash>/``; ``quantized_hf`` writes it as it goes (every
``CACHE_CHUNK`` loglikelihood requests). The folder also records the cell's attempts, ``[start, end]`` in
epoch seconds; an attempt that never finished ended at its last response written. The finished cell's record
counts every attempt's time, and the folder is removed once the cell is finished. Responses of our own
request types (StereoSet's scores, SEAT's embeddings) and of masked LMs are not cached: lm-eval's cache
wraps the three standard request types, and ``quantized_hf`` writes causal loglikelihoods only.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

CACHE_DIR = ".cache"
ATTEMPTS = "attempts.json"
RESPONSES = "responses"  # lm-eval appends "_rank0.db"


def cache_folder(output_dir: str | Path, cell_hash: str) -> Path:
    """Where a cell keeps its responses and attempts until it is finished."""
    return Path(output_dir) / CACHE_DIR / cell_hash


def responses_path(folder: Path) -> str:
    """The ``use_cache`` value for ``simple_evaluate``: the SQLite file's name without lm-eval's rank suffix."""
    return str(folder / RESPONSES)


def begin_attempt(folder: Path, now: float | None = None) -> list[list[float]]:
    """Record an attempt starting at NOW; returns the earlier attempts, each closed.

    Args:
        folder: the cell's cache folder (made if missing).
        now: the attempt's start (epoch seconds; default: the clock).

    Returns:
        ``[start, end]`` of each earlier attempt, the last one (cut off, so never closed) ending at the last
        write to its responses, or at its start when it wrote none.
    """
    folder.mkdir(parents=True, exist_ok=True)
    record = folder / ATTEMPTS
    attempts = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else []
    for attempt in attempts:
        if attempt[1] is None:
            written = [path.stat().st_mtime for path in folder.glob(f"{RESPONSES}*.db")]
            attempt[1] = max([attempt[0], *written])
    record.write_text(json.dumps([*attempts, [time.time() if now is None else now, None]]), encoding="utf-8")
    return attempts


def finish(folder: Path) -> None:
    """The cell is finished: its responses and attempts are no longer needed."""
    shutil.rmtree(folder, ignore_errors=True)
