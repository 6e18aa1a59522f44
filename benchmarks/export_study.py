"""Copy a finished study's shareable outputs into a folder for the repository (docs/gemma-3-270m/).

    python benchmarks/export_study.py results/gemma_full docs/gemma-3-270m [--pauses logs/pauses.log]

Writes, for every finished cell: `results/<compression>.<tasks>.json` (lm-eval's results file, without the
per-item samples, which stay in the study folder) with local paths replaced by placeholders
(the model folder by `$GEMMA_DIR`, the data folder by `$LM_EVAL_BIAS_DATA_DIR`, this checkout by
`<checkout>`, the home folder by `~`); `cells.csv`: one row per cell with its compression, tasks,
file name and wall time in seconds (less any time the study process was stopped, when --pauses names
a log of `stop EPOCH ...` / `cont EPOCH ...` lines) and the host's load as it started and ended (cells run
since the study recorded it); then the leaderboard as Markdown, CSV and HTML
(which embeds the figures; paired p-values with Holm's correction) and the figures, through the
lm-eval-bias commands (paired tests read the samples). With --archive-cells, also
`cells/<compression>.<tasks>.tar.xz`: each finished cell's whole folder (samples included, paths as
run), so that the leaderboard can be recomputed and an unfinished study resumed on another machine
(unpack them into the study's output_dir and run the study again with the same model path), and
`cells/unfinished/<hash>.tar.xz`: the responses an unfinished cell had scored (its `.cache/<hash>/`),
so that it resumes there from them. An archive
newer than its cell's cell.json is kept as it is, and one over 2 MB is not kept at all (a HolisticBias
cell's samples compress to about 9 MB: its results file is exported, its samples stay in the study folder).

A compression may have several cells, one per task entry of the config (a task added to a finished
grid is a second entry): each cell's files are named by its compression and its task list
(`cell_names`), so none overwrites another; the leaderboard reads a compression's cells as one run.
Files of an earlier export that no finished cell has any more are removed from results/ (and cells/
with --archive-cells). With --merge they are kept, with their cells.csv rows, and the leaderboard and
figures are left as they were: for a study folder restored on another machine from the archives, which
lacks the cells too large to archive (their samples, which the paired tests read, are not in the
repository), so that exporting its new cells drops none of the earlier ones.
"""

from __future__ import annotations

import argparse
import csv
import json
import lzma
import os
import re
import subprocess
import sys
import tarfile
from collections import Counter
from datetime import datetime
from pathlib import Path

from lm_eval_bias.study.resume import CACHE_DIR


def paused_seconds(pauses: Path | None, start: float, end: float) -> float:
    """Seconds within [start, end] during which the study process was stopped (SIGSTOP/SIGCONT log)."""
    if pauses is None or not pauses.is_file():
        return 0.0
    total, stopped_at = 0.0, None
    for line in pauses.read_text().splitlines():
        action, epoch = line.split()[:2]
        if action == "stop":
            stopped_at = float(epoch)
        elif action == "cont" and stopped_at is not None:
            total += max(0.0, min(float(epoch), end) - max(stopped_at, start))
            stopped_at = None
    return total


REPOSITORY = Path(__file__).resolve().parents[1]


def scrubbed(text: str, model_dir: str | None) -> str:
    """Local paths as placeholders: the model folder, the data folder, this checkout (or the one a task
    YAML was read from), the home folder."""
    places = [
        (model_dir, "$GEMMA_DIR"),
        (os.environ.get("LM_EVAL_BIAS_DATA_DIR"), "$LM_EVAL_BIAS_DATA_DIR"),
        (str(REPOSITORY), "<checkout>"),
        (str(Path.home()), "~"),
    ]
    for path, placeholder in places:
        if path:
            text = text.replace(str(Path(path).resolve()), placeholder).replace(path, placeholder)
    # a task YAML of another checkout of this package (a study run from a second worktree)
    return re.sub(r'(?<=")/[^"]*?(?=/tasks/\w+/\w+\.yaml")', "<checkout>", text)


def file_name(label: str) -> str:
    """A compression label as a file name: a path inside it (calibration=results/x.txt) loses its slashes."""
    return re.sub(r"[^\w.,=()+-]", "_", label)


MAX_ARCHIVE_BYTES = 2_000_000  # a larger cell archive stays out of the repository (a HolisticBias cell: ~9 MB)
# xz's strongest preset: a BBQ cell's 35 MB of samples compress to 1.80 MB (1.98 MB at the default, 6), in ~40 s
ARCHIVE_PRESET = 9 | lzma.PRESET_EXTREME
TASKS_SHOWN = 60  # longer task lists are named by their first task and a count


class ArchiveTooLarge(Exception):
    """The compressed output passed MAX_ARCHIVE_BYTES."""


class _CappedFile:
    """A binary file that raises ArchiveTooLarge once more than MAX_ARCHIVE_BYTES have been written to it, so
    that an archive too large to keep stops compressing there instead of at its end."""

    def __init__(self, handle):
        self.handle, self.written = handle, 0

    def write(self, data) -> int:
        self.written += len(data)
        if self.written > MAX_ARCHIVE_BYTES:
            raise ArchiveTooLarge
        return self.handle.write(data)


def write_archive(folder: Path, target: Path, arcname: str | None = None) -> bool:
    """FOLDER as TARGET (.tar.xz), named ARCNAME inside (default: its name); False, and no TARGET, when it
    would be over MAX_ARCHIVE_BYTES."""
    try:
        with (
            open(target, "wb") as handle,
            tarfile.open(fileobj=_CappedFile(handle), mode="w:xz", preset=ARCHIVE_PRESET) as tar,
        ):
            tar.add(folder, arcname=arcname or folder.name)
    except ArchiveTooLarge:
        target.unlink()
        return False
    return True


def task_label(tasks: str) -> str:
    """A cell's task list (comma-separated) in a file name: the tasks joined by '+', or, past TASKS_SHOWN
    characters, the first and how many more ('bbq_bias_age+5_more')."""
    names = tasks.split(",")
    joined = "+".join(names)
    return joined if len(joined) <= TASKS_SHOWN else f"{names[0]}+{len(names) - 1}_more"


def cell_names(cells: list[dict]) -> dict[str, str]:
    """Cell hash -> the stem of its exported files, `<compression>.<tasks>`, or `<model>.<compression>.<tasks>`
    for the cells of any model but the one with the most cells (a distilled student beside its teacher's grid);
    cells that would share a stem (two long task lists with the same first task) get their hash appended."""
    models = Counter(cell["labels"].get("model") for cell in cells)
    main_model = models.most_common(1)[0][0] if models else None

    def stem(cell: dict) -> str:
        labels = cell["labels"]
        name = f"{file_name(labels['compression'])}.{file_name(task_label(labels['task']))}"
        return name if labels.get("model") == main_model else f"{file_name(str(labels.get('model')))}.{name}"

    stems = {cell["hash"]: stem(cell) for cell in cells}
    counts = Counter(stems.values())
    return {key: stem if counts[stem] == 1 else f"{stem}.{key}" for key, stem in stems.items()}


def load_columns(load: dict | None) -> dict[str, float | str]:
    """cells.csv's load columns from a cell.json's ``load`` record (blank where it has none)."""
    start, end = (load or {}).get("start") or [], (load or {}).get("end") or []
    return {
        "load_start_1m": start[0] if start else "",
        "load_end_1m": end[0] if end else "",
        "load_end_15m": end[2] if len(end) > 2 else "",
    }


def earlier_rows(out: Path, hashes: set[str]) -> list[dict]:
    """The rows of OUT's cells.csv (an earlier export) whose cell is none of HASHES."""
    table = out / "cells.csv"
    if not table.is_file():
        return []
    with open(table, newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["hash"] not in hashes]


def export_cells(
    results_dir: Path, out: Path, model_dir: str | None, pauses: Path | None, archive: bool, merge: bool = False
) -> list:
    """The per-cell outputs (results files, archives) and cells.csv; returns cells.csv's rows.

    With MERGE, an earlier export's files and cells.csv rows of cells that RESULTS_DIR does not hold are kept
    (a study folder restored from the archives lacks the cells too large to archive); else they are removed.
    """
    folders = sorted(path.parent for path in results_dir.glob("*/cell.json"))
    cells = [json.loads((folder / "cell.json").read_text()) for folder in folders]
    names = cell_names(cells)
    (out / "results").mkdir(parents=True, exist_ok=True)
    kept = {names[cell["hash"]] for cell in cells}
    stale = [path for path in (out / "results").glob("*.json") if path.stem not in kept]
    if archive:
        (out / "cells").mkdir(exist_ok=True)
        stale += [path for path in (out / "cells").glob("*.tar.xz") if path.name[: -len(".tar.xz")] not in kept]
    for path in [] if merge else stale:  # an earlier export's files of cells that are gone, or named the old way
        path.unlink()
    rows = earlier_rows(out, {cell["hash"] for cell in cells}) if merge else []
    for folder, cell in zip(folders, cells):
        name = names[cell["hash"]]
        results_file = next(folder.glob("*/results_*.json"))
        (out / "results" / f"{name}.json").write_text(scrubbed(results_file.read_text(), model_dir))
        target = out / "cells" / f"{name}.tar.xz"
        # an archive written after its cell finished is that cell's (a rerun cell writes a newer cell.json)
        if archive and not (target.is_file() and target.stat().st_mtime >= (folder / "cell.json").stat().st_mtime):
            if not write_archive(folder, target):  # too large for the repository: results file only
                print(f"not archived: {name} ({folder} compresses past {MAX_ARCHIVE_BYTES:,} bytes)")
        end = (folder / "cell.json").stat().st_mtime
        # each run of a cell that resumed from a run cut off (cell.json "attempts"), else its one run
        runs = cell.get("attempts") or [[end - cell["seconds"], end]]
        stopped = sum(paused_seconds(pauses, start, stop) for start, stop in runs)
        rows.append(
            {
                "compression": cell["labels"]["compression"],
                "tasks": cell["labels"]["task"],
                "file": name,
                "hash": cell["hash"],
                "finished_utc": datetime.utcfromtimestamp(end).strftime("%Y-%m-%d %H:%M"),
                "wall_s": round(cell["seconds"] - stopped, 1),
                "stopped_s": round(stopped, 1),
                # the 1-minute load average as the cell started and ended, and the 15-minute one at its end
                # (2 cores: about 1 is one thread of work, 2 both cores busy); blank for cells run before
                # the study recorded it
                **load_columns(cell.get("load")),
            }
        )
    with open(out / "cells.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: r["finished_utc"]))
    return rows


def export_unfinished(results_dir: Path, out: Path, merge: bool = False) -> list[str]:
    """Each unfinished cell's responses (``.cache/<hash>/``, its cell cut off) as
    ``cells/unfinished/<hash>.tar.xz``, which unpacks into the study folder as that folder, so that the cell
    resumes on another machine from the responses it had scored (the last attempt's end is the responses'
    last write, which the archive keeps). Archives of cells finished since, or (without MERGE) of caches this
    folder no longer has, are removed. Returns the hashes archived."""
    target_dir = out / "cells" / "unfinished"
    caches = sorted(path for path in (results_dir / CACHE_DIR).glob("*") if path.is_dir())
    finished = {path.parent.name for path in results_dir.glob("*/cell.json")}
    cached = {cache.name for cache in caches}
    for path in target_dir.glob("*.tar.xz") if target_dir.is_dir() else []:
        cell = path.name[: -len(".tar.xz")]
        if cell in finished or not (merge or cell in cached):
            path.unlink()
    archived = []
    for cache in caches:
        target_dir.mkdir(parents=True, exist_ok=True)
        if _archive_settled(cache, target_dir / f"{cache.name}.tar.xz", arcname=f"{CACHE_DIR}/{cache.name}"):
            archived.append(cache.name)
        else:
            print(f"not archived: the responses of unfinished cell {cache.name} (past {MAX_ARCHIVE_BYTES:,} bytes)")
    return archived


def _last_write(folder: Path) -> tuple:
    return tuple(sorted((path.name, path.stat().st_mtime_ns, path.stat().st_size) for path in folder.iterdir()))


def _archive_settled(folder: Path, target: Path, arcname: str, tries: int = 5) -> bool:
    """``write_archive`` of a folder a running study may be writing to: again until no file changed while it
    was read (a response database read during a write would unpack torn)."""
    for _ in range(tries):
        before = _last_write(folder)
        written = write_archive(folder, target, arcname=arcname)
        if _last_write(folder) == before:
            return written
    raise RuntimeError(f"{folder} changed during each of {tries} tries to archive it; stop its study and retry")


def export(
    results_dir: Path, out: Path, model_dir: str | None, pauses: Path | None, archive: bool = False, merge: bool = False
) -> None:
    rows = export_cells(results_dir, out, model_dir, pauses, archive, merge)
    if archive:
        unfinished = export_unfinished(results_dir, out, merge)
        print(f"{len(unfinished)} unfinished cells' responses archived: {', '.join(unfinished) or 'none'}")
    if merge:  # the leaderboard and figures read every cell's samples, which this folder lacks for some
        print(f"{len(rows)} cells in cells.csv, into {out}; leaderboard and figures left as they were (--merge)")
        return
    run(["plot", str(results_dir), "-o", str(out / "figures"), "--formats", "png", "--correction", "holm"], model_dir)
    for suffix in ("md", "csv", "html"):  # the HTML page embeds the figures
        run(
            [
                "leaderboard",
                str(results_dir),
                "-o",
                str(out / f"leaderboard.{suffix}"),
                "--figures",
                str(out / "figures"),
                "--correction",
                "holm",
            ],
            model_dir,
        )
    print(f"{len(rows)} cells, {sum(r['wall_s'] for r in rows) / 3600:.2f} h of wall time, into {out}")


def run(arguments: list[str], model_dir: str | None) -> None:
    subprocess.run([sys.executable, "-m", "lm_eval_bias.cli", *arguments], check=True)
    target = Path(arguments[arguments.index("-o") + 1])
    if target.is_file():  # a leaderboard file; plot writes a folder of images
        target.write_text(scrubbed(target.read_text(), model_dir))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument(
        "--model-dir",
        default=os.environ.get("GEMMA_DIR"),
        help="local model folder to replace by $GEMMA_DIR (default: $GEMMA_DIR)",
    )
    parser.add_argument("--pauses", type=Path, help="log of stop/cont lines (epoch seconds) of the study process")
    parser.add_argument(
        "--archive-cells",
        action="store_true",
        help="also write cells/<compression>.<tasks>.tar.xz: each finished cell's folder, samples included; and "
        "cells/unfinished/<hash>.tar.xz: each unfinished cell's responses so far",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the earlier export's files and cells.csv rows of cells this folder lacks (a study restored "
        "from the archives), and leave the leaderboard and figures as they were",
    )
    args = parser.parse_args()
    export(args.results_dir, args.out_dir, args.model_dir, args.pauses, args.archive_cells, args.merge)


if __name__ == "__main__":
    main()
