"""A finished cell whose results file is later cut short is not finished any more: the leaderboard names the file,
`--dry-run` shows the cell as damaged, and the study reports it in one line and runs it again."""

from __future__ import annotations

import json

from fixtures.study import finished_dirs, write_config
from lm_eval_bias.cli import main
from lm_eval_bias.study import load_study
from lm_eval_bias.study.cell import DAMAGED_DIR, cell_state

STUDY = ["--no-progress", "--skip-task-check"]


def test_a_truncated_finished_cell_is_reported_and_run_again(
    tiny_gpt2_dir, crows_pairs_fixture_csv, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", crows_pairs_fixture_csv)
    config = write_config(tmp_path, [{"id": tiny_gpt2_dir, "name": "tiny-gpt2"}], compressions=["none"])
    assert main(["study", str(config), *STUDY]) == 0
    out = tmp_path / "out"
    (folder,) = finished_dirs(out)
    (results,) = folder.glob("*/results_*.json")
    whole = results.read_bytes()
    results.write_bytes(whole[: len(whole) // 2])  # a full disk, an interrupted copy
    capsys.readouterr()

    assert main(["leaderboard", str(out)]) == 2
    assert capsys.readouterr().err.startswith(f"lm-eval-bias: unreadable {results}: line ")

    assert main(["study", str(config), "--dry-run"]) == 0
    dry = capsys.readouterr().out.splitlines()
    description = "tiny-gpt2 @ main · none · crows_pairs_bias"
    line = (
        f"damaged: {description} [{folder.name}]: {results}: {len(whole) // 2} bytes, cell.json recorded "
        f"{len(whole)} (cut short or changed); it runs again (the old folder goes to {DAMAGED_DIR}/)"
    )
    assert dry[:3] == [
        f"damaged   {folder.name}  {description}",
        line,
        f"1 cells: 0 finished (kept as they are), 1 to run (1 of them damaged), into {out}",
    ]

    assert main(["study", str(config), *STUDY]) == 0
    captured = capsys.readouterr()
    assert line in captured.err.splitlines()
    assert "study tiny: 1 cells: 1 done, 0 skipped (already finished), 0 failed; 1 damaged, run again" in captured.out
    (cell,) = load_study(config).cells
    assert cell_state(out, cell) == ("finished", "")
    (new_results,) = folder.glob("*/results_*.json")
    assert "results" in json.loads(new_results.read_text())
    (aside,) = (out / DAMAGED_DIR).iterdir()  # the damaged folder, kept for a look, out of the leaderboard's way
    assert (
        aside.name.startswith(f"{folder.name}.")
        and (aside / results.relative_to(folder)).read_bytes() == whole[: len(whole) // 2]
    )
    assert main(["leaderboard", str(out)]) == 0
    capsys.readouterr()

    assert main(["study", str(config), *STUDY]) == 0
    assert "1 cells: 0 done, 1 skipped (already finished), 0 failed\n" in capsys.readouterr().out
