"""lm-eval's task index of its own tasks folder, kept on disk between runs.

Every `lm_eval` process builds `TaskManager`'s index by parsing each task YAML it can find:
about 14,000 files in lm-eval's own `tasks/` folder, 3-4 s of CPU on a 2-core host, a quarter of
a whole run whose forward is nearly free (docs/benchmarks.md, *Whole `lm_eval` runs*). That
folder's index depends on nothing but its YAML files, so the plugin keeps it in
``$XDG_CACHE_HOME/lm_eval_bias/task_index/`` (``~/.cache/...`` by default), under a key made of
lm-eval's version, the folder, and every YAML file's path, size and modification time: adding,
removing or editing any of them builds the index anew. Loading the kept index takes a tenth of
the time. Other folders (ours, a user's ``--include_path``) are indexed as lm-eval does, every
time. Entries come back equal to a fresh build's (``tests/unit/test_task_index_cache.py``).

``LM_EVAL_BIAS_TASK_INDEX_CACHE=0`` turns the cache off. A cache file that cannot be read or
written is ignored: the index is then built as lm-eval builds it, never wrong, only slower.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pickle
from pathlib import Path

DISABLE_ENV = "LM_EVAL_BIAS_TASK_INDEX_CACHE"
IGNORED_DIRS = {"__pycache__", ".ipynb_checkpoints"}  # as lm_eval.tasks._index._IGNORE_DIRS
log = logging.getLogger("lm_eval.lm_eval_bias")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lm_eval_bias" / "task_index"


def cached_roots() -> set[Path]:
    """The folders whose index is kept: lm-eval's own tasks folder."""
    import lm_eval.tasks

    return {Path(lm_eval.tasks.__file__).resolve().parent}


def fingerprint(root: Path) -> str:
    """A hash of lm-eval's version, ``root`` and each YAML file's relative path, size and mtime under it."""
    import lm_eval

    files = []
    for folder, subfolders, names in os.walk(root, followlinks=True):
        subfolders[:] = [name for name in subfolders if name not in IGNORED_DIRS]
        for name in names:
            if name.endswith(".yaml"):
                path = os.path.join(folder, name)
                stat = os.stat(path)
                files.append(f"{os.path.relpath(path, root)}\0{stat.st_size}\0{stat.st_mtime_ns}")
    digest = hashlib.sha256(f"{getattr(lm_eval, '__version__', '?')}\0{root}\0".encode())
    for line in sorted(files):
        digest.update(line.encode("utf-8", "surrogateescape") + b"\n")
    return digest.hexdigest()[:32]


def _kept(root: Path, build) -> dict:
    """``build([root])``, read from the cache when its YAML files are unchanged, else built and kept."""
    folder = cache_dir()
    stem = hashlib.sha256(str(root).encode()).hexdigest()[:16]
    path = folder / f"{stem}-{fingerprint(root)}.pickle"
    try:
        with path.open("rb") as handle:
            return pickle.load(handle)
    except FileNotFoundError:
        pass
    except Exception as error:  # noqa: BLE001 - a damaged cache file is rebuilt, never trusted
        log.debug("task index cache %s unreadable (%r): rebuilding", path, error)
    index = build([root], resolve_includes=True)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob(f"{stem}-*.pickle"):  # the index of an earlier state of the same folder
            old.unlink(missing_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        with partial.open("wb") as handle:
            pickle.dump(index, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, path)
    except OSError as error:
        log.debug("task index cache %s not written (%r)", path, error)
    return index


def cached_build(original):
    """``TaskIndex.build`` that reads lm-eval's own tasks folder from the cache; every other folder as before."""

    @functools.wraps(original)
    def build(paths, *, resolve_includes=True):
        paths = list(paths)
        if os.environ.get(DISABLE_ENV, "1") == "0" or not resolve_includes:
            return original(paths, resolve_includes=resolve_includes)
        roots = cached_roots()
        index: dict = {}
        for root in paths:  # as the original: later folders override earlier ones, with a warning
            resolved = Path(root).resolve()
            part = _kept(resolved, original) if resolved in roots else original([root], resolve_includes=True)
            for name, entry in part.items():
                if name in index:
                    logging.getLogger("lm_eval.tasks._index").warning(
                        "Task '%s' from %s overrides existing task from %s",
                        name,
                        entry.yaml_path,
                        index[name].yaml_path,
                    )
                index[name] = entry
        return index

    return build
