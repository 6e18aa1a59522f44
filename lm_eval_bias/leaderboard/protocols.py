"""Which protocol and StereoSet split each run was made under, and the refusal to pair runs that differ.

A task's config in the results JSON records ``metadata.protocol`` and, for StereoSet tasks,
``metadata.stereoset_split`` (:mod:`lm_eval_bias.protocol`). Runs written before either
existed count as ``default`` and ``dev``. Two runs made under different protocols or on
different StereoSet files score different quantities, so a Δ or a paired test between them
would be meaningless: the leaderboard refuses to pair them. Only the tasks both runs hold are
compared: a cell's runs may hold different tasks (a study's second task entry adds a run to a
finished cell), and a run that shares no task with a run of its baseline is never paired with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


def protocols(data: dict[str, Any]) -> tuple[frozenset[str], frozenset[str]]:
    """(protocols, StereoSet splits) recorded in a results JSON's task configs.

    Args:
        data: a parsed lm-eval results JSON.

    Returns:
        ``(protocols, splits)``: the ``metadata.protocol`` of every task config (``"default"`` where
        none is recorded) and the ``metadata.stereoset_split`` of every StereoSet task (``"dev"`` where
        none is); both empty when the JSON has no task configs.
    """
    found: set[str] = set()
    splits: set[str] = set()
    for task, config in (data.get("configs") or {}).items():
        metadata = (config or {}).get("metadata") or {}
        metadata = metadata if isinstance(metadata, dict) else {}
        found.add(str(metadata.get("protocol") or "default"))
        if str(task).startswith("stereoset"):
            splits.add(str(metadata.get("stereoset_split") or "dev"))
    return frozenset(found), frozenset(splits)


def _describe(signature: tuple[frozenset[str], frozenset[str]]) -> str:
    found, splits = signature
    text = f"protocol {'/'.join(sorted(found)) or 'default'}"
    return text + (f", StereoSet split {'/'.join(sorted(splits))}" if splits else "")


def conflict(run_data: dict[str, Any], base_data: dict[str, Any]) -> str | None:
    """Why two runs cannot be paired, or None when, on the tasks both hold, their protocols (and StereoSet
    splits) agree.

    Args:
        run_data: the run's parsed results JSON.
        base_data: its baseline's parsed results JSON.

    Returns:
        ``"protocol A, StereoSet split X vs protocol B, ..."`` when they differ on a task both ran (a leaf
        task of both ``configs``), else None: runs that share no task have nothing to disagree on.
    """
    run_configs, base_configs = run_data.get("configs") or {}, base_data.get("configs") or {}
    shared = set(run_configs) & set(base_configs)
    run = protocols({"configs": {task: run_configs[task] for task in shared}})
    base = protocols({"configs": {task: base_configs[task] for task in shared}})
    if run[0] != base[0] or (run[1] and base[1] and run[1] != base[1]):
        return f"{_describe(run)} vs {_describe(base)}"
    return None


def check_pairable(runs: Iterable, baseline_of: Callable) -> None:
    """Raise ValueError naming the first run whose baseline was made under another protocol or split.

    Args:
        runs: leaderboard runs (``.key``, ``.data``, ``.path``).
        baseline_of: a run -> the key of its baseline, or None.

    Raises:
        ValueError: a run and a run of its baseline cell were made under different protocols, or on
            different StereoSet splits, for a task both ran.
    """
    runs = list(runs)
    by_key: dict[tuple, list] = {}
    for run in runs:
        by_key.setdefault(run.key, []).append(run)
    for run in runs:
        key = baseline_of(run)
        for base in by_key.get(key, []) if key else []:
            why = None if base is run else conflict(run.data, base.data)
            if why:
                raise ValueError(
                    f"Cannot compare {run.path} with its baseline {base.path}: they were made under different "
                    f"protocols ({why}), so their differences would be meaningless. Re-run one of them with the "
                    "other's --metadata protocol/stereoset_split, or build the leaderboard from separate folders."
                )
