"""Finding the runs under a results folder, and refusing to read part of it silently.

Every results file and every samples file beside it is read whole before a leaderboard or a
figure uses it: a file that does not parse (cut short, a NUL block after a crash, not UTF-8), or
a samples file holding fewer rows than its results file's `n-samples` says, is *unreadable*.
`load_runs` then stops with one line per such file naming it and the line; with
`skip_unreadable=True` it leaves out the runs those files belong to, and `scan_runs` says which.
"""

from __future__ import annotations

from pathlib import Path

from lm_eval_bias.leaderboard.results import Run, read_run
from lm_eval_bias.results_files import UnreadableFileError, count_jsonl, samples_rows_problem

SKIP_HINT = "--skip-unreadable leaves out the runs they belong to"


class UnreadableResultsError(ValueError):
    """Results or samples files under a results folder that do not read back whole.

    Args:
        root: the results folder (for the message).
        unreadable: one ``UnreadableFileError`` per file, naming it and the line.

    Attributes:
        unreadable: as given.
    """

    def __init__(self, root: str | Path, unreadable: list[UnreadableFileError]) -> None:
        self.unreadable = unreadable
        files = "file" if len(unreadable) == 1 else "files"
        lines = [f"unreadable {error}" for error in unreadable]
        super().__init__(
            f"{len(unreadable)} unreadable results {files} under {root} ({SKIP_HINT}):\n" + "\n".join(lines)
            if len(unreadable) > 1
            else f"{lines[0]} ({SKIP_HINT})"
        )


def check_samples(run: Run) -> list[UnreadableFileError]:
    """Every samples file of a run, read whole and its rows counted against the results' ``n-samples``.

    Args:
        run: a run (``results.read_run``).

    Returns:
        One error per samples file that does not read back whole; none when all do.
    """
    problems = []
    for task, path in run.samples.items():
        try:
            rows = count_jsonl(path)
        except UnreadableFileError as error:
            problems.append(error)
            continue
        problem = samples_rows_problem(path, rows, run.data, task)
        if problem:
            problems.append(UnreadableFileError(path, problem))
    return problems


def scan_runs(root: str | Path) -> tuple[list[Run], list[UnreadableFileError]]:
    """Every lm-eval results file under `root` (hidden folders, such as a study's .tmp/, skipped), each read whole
    with its samples files.

    Args:
        root: a folder searched recursively for ``*.json`` (``cell.json`` files aside), or one results file.

    Returns:
        (the runs whose files all read back whole, in sorted path order; one error per unreadable file, naming
        it and the line). JSON files that are not lm-eval results are skipped.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: a results file's ``config.quantization`` is not a compression record.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"results directory {root} does not exist")
    paths = [root] if root.is_file() else sorted(root.rglob("*.json"))
    runs, unreadable = [], []
    for path in paths:
        relative = path.relative_to(root).parts if path != root else ()
        if any(part.startswith(".") for part in relative) or path.name in ("cell.json",):
            continue
        try:
            run = read_run(path, root if root.is_dir() else path.parent)
        except UnreadableFileError as error:
            unreadable.append(error)
            continue
        if run is None:
            continue
        problems = check_samples(run)
        unreadable += problems
        if not problems:
            runs.append(run)
    return runs, unreadable


def load_runs(root: str | Path, skip_unreadable: bool = False) -> list[Run]:
    """Every lm-eval results file under `root`, as ``scan_runs`` finds them.

    Args:
        root: a folder searched recursively for ``*.json`` (``cell.json`` files aside), or one results file.
        skip_unreadable: leave out the runs whose results, samples or cell.json files do not read back whole,
            instead of stopping.

    Returns:
        The runs, in sorted path order; JSON files that are not lm-eval results are skipped.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        UnreadableResultsError: a results, samples or cell.json file does not read back whole (unless
            ``skip_unreadable``); the message names each such file and the line.
        ValueError: a results file's ``config.quantization`` is not a compression record.
    """
    runs, unreadable = scan_runs(root)
    if unreadable and not skip_unreadable:
        raise UnreadableResultsError(root, unreadable)
    return runs
