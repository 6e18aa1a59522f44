"""Run a study: skip finished cells, run the rest on an executor, report what happened."""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import yaml
from tqdm import tqdm

from lm_eval_bias.study.cell import DAMAGED_DIR, Cell, Outcome, cell_state, remove_stale_tmp, remove_tmp_of_finished
from lm_eval_bias.study.config import Study, StudyConfigError

CONFIG_COPY = "study.yaml"


@dataclass
class Summary:
    study: str
    output_dir: Path
    outcomes: list[Outcome] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)  # one line per damaged finished cell found, run again

    def count(self, status: str) -> int:
        return sum(outcome.status == status for outcome in self.outcomes)

    @property
    def failed(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.status == "failed"]

    @property
    def exit_status(self) -> int:
        return 1 if self.failed else 0

    def report(self) -> str:
        lines = [
            f"study {self.study}: {len(self.outcomes)} cells: {self.count('done')} done, "
            f"{self.count('skipped')} skipped (already finished), {self.count('failed')} failed"
            + (f"; {len(self.damaged)} damaged, run again" if self.damaged else "")
        ]
        lines += [f"  {line}" for line in self.damaged]
        lines += [
            f"  failed  {outcome.description}  [{outcome.hash}]\n          {outcome.reason}" for outcome in self.failed
        ]
        lines.append(f"results: {self.output_dir}  (lm-eval-bias leaderboard {self.output_dir})")
        return "\n".join(lines)


def check_tasks(study: Study) -> None:
    """Unknown task names stop the study before anything runs, with close matches."""
    from lm_eval_bias.study.cell import task_index

    unknown = [task for task in study.tasks if task not in task_index(defaults=False).all_tasks]
    if unknown:  # not one of ours: index the harness's own tasks too
        known = set(task_index(defaults=True).all_tasks)
        unknown = [task for task in unknown if task not in known]
    if unknown:
        hints = [
            f"{task} (did you mean {', '.join(close)}?)"
            if (close := difflib.get_close_matches(task, known, n=3))
            else task
            for task in unknown
        ]
        raise StudyConfigError(f"unknown tasks: {'; '.join(hints)}. `lm_eval ls tasks` lists the known ones.")


def plan(study: Study) -> list[tuple[str, Cell]]:
    """(state, cell) per distinct cell, state 'finished', 'to run' or 'damaged' (finished, but a file no longer
    matches what its cell.json recorded: it runs again)."""
    cells = {cell.hash: cell for cell in study.cells}.values()  # the same settings listed twice run once
    return [(cell_state(study.output_dir, cell)[0], cell) for cell in cells]


def damaged_line(cell: Cell, problem: str) -> str:
    """The one line that reports a damaged finished cell: which cell, which file, what is wrong."""
    return (
        f"damaged: {cell.description} [{cell.hash}]: {problem}; it runs again (the old folder goes to {DAMAGED_DIR}/)"
    )


def plan_report(rows: list[tuple[str, Cell]], output_dir: Path) -> str:
    """What `study --dry-run` prints: one line per cell, then per task entry (a cell's task list) how many of
    its cells are finished and how many will run, so that a task entry added to a finished grid shows as the
    only work left."""
    lines = [f"{state:<9} {cell.hash}  {cell.description}" for state, cell in rows]
    lines += [damaged_line(cell, cell_state(output_dir, cell)[1]) for state, cell in rows if state == "damaged"]
    by_tasks: dict[str, list[str]] = {}
    for state, cell in rows:
        by_tasks.setdefault(cell.task, []).append(state)
    finished = sum(state == "finished" for state, _ in rows)
    damaged = sum(state == "damaged" for state, _ in rows)
    lines.append(
        f"{len(rows)} cells: {finished} finished (kept as they are), {len(rows) - finished} to run"
        + (f" ({damaged} of them damaged)" if damaged else "")
        + f", into {output_dir}"
    )
    lines += [
        f"  tasks {task}: {states.count('finished')} finished, {len(states) - states.count('finished')} to run"
        for task, states in by_tasks.items()
    ]
    return "\n".join(lines)


def run_study(study: Study, executor, progress: bool = True, stream: TextIO | None = None) -> Summary:
    output_dir = study.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(output_dir)
    (output_dir / CONFIG_COPY).write_text(yaml.safe_dump(study.source, sort_keys=False), encoding="utf-8")

    summary = Summary(study.name, output_dir)
    todo, seen = [], set()
    for cell in study.cells:
        if cell.hash in seen:  # the same settings listed twice run once
            continue
        seen.add(cell.hash)
        state, problem = cell_state(output_dir, cell)
        if state == "finished":
            summary.outcomes.append(Outcome(cell.hash, cell.description, "skipped"))
            continue
        if state == "damaged":
            summary.damaged.append(damaged_line(cell, problem))
            print(summary.damaged[-1], file=stream or sys.stderr, flush=True)
        todo.append(cell)

    bar = tqdm(
        total=len(seen),
        initial=len(seen) - len(todo),
        desc=study.name,
        unit="cell",
        disable=not progress,
        file=stream or sys.stderr,
        dynamic_ncols=True,
    )
    with bar:
        bar.set_postfix_str(_postfix(summary))
        for outcome in executor.map(todo, output_dir):
            summary.outcomes.append(outcome)
            if outcome.status == "failed":
                bar.write(f"failed: {outcome.description}: {outcome.reason}")
            bar.update(1)
            bar.set_postfix_str(_postfix(summary))
    remove_tmp_of_finished(output_dir, todo)
    return summary


def _postfix(summary: Summary) -> str:
    return f"done {summary.count('done')}, skipped {summary.count('skipped')}, failed {summary.count('failed')}"
