"""Copy a finished study's shareable outputs into a folder for the repository (docs/gemma-3-270m/).

    python benchmarks/export_study.py results/gemma_full docs/gemma-3-270m [--pauses logs/pauses.log]

Writes, for every finished cell: `results/<compression>.json` (lm-eval's results file, without the
per-item samples, which stay in the study folder) with local paths replaced by placeholders
(the model folder by `$GEMMA_DIR`, the data folder by `$LM_EVAL_BIAS_DATA_DIR`, this checkout by
`<checkout>`, the home folder by `~`); `cells.csv`: one row per cell with its
compression, tasks and wall time in seconds (less any time the study process was stopped, when
--pauses names a log of `stop EPOCH ...` / `cont EPOCH ...` lines); then the leaderboard as Markdown,
CSV and HTML (which embeds the figures) and the figures, through the lm-eval-bias commands (paired
tests read the samples). With --archive-cells, also `cells/<compression>.tar.xz`: each finished
cell's whole folder (samples included, paths as run), so that the leaderboard can be recomputed and
an unfinished study resumed on another machine (unpack them into the study's output_dir and run
the study again with the same model path).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tarfile
from datetime import datetime
from pathlib import Path


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
    """Local paths as placeholders: the model folder, the data folder, this checkout, the home folder."""
    places = [
        (model_dir, "$GEMMA_DIR"),
        (os.environ.get("LM_EVAL_BIAS_DATA_DIR"), "$LM_EVAL_BIAS_DATA_DIR"),
        (str(REPOSITORY), "<checkout>"),
        (str(Path.home()), "~"),
    ]
    for path, placeholder in places:
        if path:
            text = text.replace(str(Path(path).resolve()), placeholder).replace(path, placeholder)
    return text


def file_name(label: str) -> str:
    """A compression label as a file name: a path inside it (calibration=results/x.txt) loses its slashes."""
    return re.sub(r"[^\w.,=()+-]", "_", label)


def export(results_dir: Path, out: Path, model_dir: str | None, pauses: Path | None, archive: bool = False) -> None:
    (out / "results").mkdir(parents=True, exist_ok=True)
    rows = []
    for cell_json in sorted(results_dir.glob("*/cell.json")):
        cell = json.loads(cell_json.read_text())
        results_file = next(cell_json.parent.glob("*/results_*.json"))
        label = cell["labels"]["compression"]
        (out / "results" / f"{file_name(label)}.json").write_text(scrubbed(results_file.read_text(), model_dir))
        if archive:
            (out / "cells").mkdir(exist_ok=True)
            with tarfile.open(out / "cells" / f"{file_name(label)}.tar.xz", "w:xz") as tar:
                tar.add(cell_json.parent, arcname=cell_json.parent.name)
        end = cell_json.stat().st_mtime
        start = end - cell["seconds"]
        stopped = paused_seconds(pauses, start, end)
        rows.append(
            {
                "compression": label,
                "tasks": cell["labels"]["task"],
                "hash": cell["hash"],
                "finished_utc": datetime.utcfromtimestamp(end).strftime("%Y-%m-%d %H:%M"),
                "wall_s": round(cell["seconds"] - stopped, 1),
                "stopped_s": round(stopped, 1),
            }
        )
    with open(out / "cells.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: r["finished_utc"]))
    run(["plot", str(results_dir), "-o", str(out / "figures"), "--formats", "png"], model_dir)
    for suffix in ("md", "csv", "html"):  # the HTML page embeds the figures
        run(
            [
                "leaderboard",
                str(results_dir),
                "-o",
                str(out / f"leaderboard.{suffix}"),
                "--figures",
                str(out / "figures"),
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
        help="also write cells/<compression>.tar.xz: each finished cell's folder, samples included",
    )
    args = parser.parse_args()
    export(args.results_dir, args.out_dir, args.model_dir, args.pauses, args.archive_cells)


if __name__ == "__main__":
    main()
