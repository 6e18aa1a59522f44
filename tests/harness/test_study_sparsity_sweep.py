"""A dose-response line in a study config: `{quantization: wanda, sparsity: [0.1, 0.3, 0.5, 0.7]}` runs one
cell per sparsity, and the leaderboard and the plots place the cells on a sparsity axis."""

from __future__ import annotations

import json

import pytest

from fixtures.corpus import CORPUS
from fixtures.study import finished_dirs, write_config
from lm_eval_bias.cli import main
from lm_eval_bias.leaderboard import build_leaderboard, load_runs
from lm_eval_bias.plots import figures

SPARSITIES = [0.1, 0.3, 0.5, 0.7]


@pytest.fixture
def sweep(tiny_llama_dir, crows_pairs_fixture_csv, tmp_path, monkeypatch):
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", str(crows_pairs_fixture_csv))
    monkeypatch.setenv("LM_EVAL_BIAS_CACHE", str(tmp_path / "cache"))
    calibration = tmp_path / "neutral.txt"
    calibration.write_text("".join(" ".join(CORPUS[i : i + 3]) + "\n" for i in range(0, len(CORPUS), 3)))
    wanda = {"quantization": "wanda", "sparsity": SPARSITIES, "calibration": str(calibration), "calibration_samples": 8}
    config = write_config(
        tmp_path, [{"id": tiny_llama_dir, "name": "tiny-llama"}], compressions=["none", wanda], limit=2
    )
    return config, tmp_path / "out"


def _stereotype_score(folder) -> tuple[str, float]:
    results = json.loads(next(folder.glob("*/results_*.json")).read_text())
    label = json.loads((folder / "cell.json").read_text())["labels"]["compression"]
    return label, results["results"]["crows_pairs_bias"]["stereotype_score,none"]  # percent


def test_a_sparsity_list_is_a_curve_in_the_leaderboard_and_the_plots(sweep, capsys):
    config, out = sweep
    assert main(["study", str(config), "--no-progress"]) == 0
    assert "5 done, 0 skipped" in capsys.readouterr().out
    scores = dict(_stereotype_score(folder) for folder in finished_dirs(out))
    assert len(scores) == 5

    wide = build_leaderboard(load_runs(out), metrics=["stereotype_score"]).wide()
    pruned = wide[wide["method"] == "wanda"].sort_values("sparsity")
    assert pruned["sparsity"].tolist() == SPARSITIES

    long = build_leaderboard(load_runs(out), metrics=["stereotype_score"]).long
    figure = figures.delta_vs_sparsity(long)
    line = next(line for line in figure.axes[0].get_lines() if line.get_linestyle() == "-")
    assert list(line.get_xdata()) == SPARSITIES  # one method: at the sparsities themselves
    expected = [scores[label] - scores["none"] for label in pruned["compression"]]  # from the results files
    assert list(line.get_ydata()) == pytest.approx(expected, abs=1e-9)

    assert main(["plot", str(out), "--formats", "png"]) == 0
    assert (out / "figures" / "delta_bias_vs_sparsity.png").is_file()
    assert main(["leaderboard", str(out), "-o", str(out / "board.md")]) == 0
    board = (out / "board.md").read_text()
    assert all(label in board for label in pruned["compression"])
