import subprocess
import sys

from lm_eval_bias.cli import main


def test_methods_lists_every_quantizer(capsys):
    from lm_eval_bias.model_wrappers.quantizers.auto import QUANTIZERS

    assert main(["methods"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(QUANTIZERS)
    # defaults as a run gets them: pruning without sparsity= or structure= prunes half the weights
    wanda = next(line for line in lines if line.startswith("wanda "))
    assert "sparsity=0.5, structure=None" in wanda


def test_check_data_counts_pairs(crows_pairs_fixture_csv, capsys):
    import pandas as pd

    expected = len(pd.read_csv(f"{crows_pairs_fixture_csv}/crows_pairs/crows_pairs_anonymized.csv"))
    assert main(["check-data", str(crows_pairs_fixture_csv), "--benchmarks", "crows_pairs"]) == 0
    assert f"{expected} CrowS-Pairs pairs" in capsys.readouterr().out


def test_check_data_reads_every_benchmark(bias_data_dir, capsys):
    from fixtures.stereoset_seat import STEREOSET_ROWS, TARGETS, seat_test_content
    from lm_eval_bias.data.seat import TESTS

    assert main(["check-data", str(bias_data_dir)]) == 0
    out = capsys.readouterr().out
    clusters = {(row[0], row[1]) for row in STEREOSET_ROWS}
    assert f"{len(STEREOSET_ROWS)} StereoSet clusters" in out
    assert all(
        f"{split:<15} {kind:<12} {sum((r[0], r[1]) == (split, kind) for r in STEREOSET_ROWS)}" in out
        for split, kind in clusters
    )
    tests = [(kind, name) for kind, named in TESTS.items() for name in named]
    assert f"SEAT: {len(tests)} tests" in out
    first = seat_test_content(0)
    assert f"targ1={len(first['targ1']['examples'])} targ2={len(TARGETS[1])} attr1=" in out
    assert "HolisticBias: 4 descriptors, 3 standalone noun phrases, 3 nouns, 2 templates" in out
    assert f"{'holistic_bias_ability':<40} {18:>8}  {18:>8}" in out  # the small set is all of 8 descriptors


def test_check_data_names_each_broken_benchmark_and_fails(bias_data_dir, tmp_path, capsys):
    import shutil

    broken = tmp_path / "data"
    shutil.copytree(bias_data_dir, broken)
    (broken / "seat" / "sent-weat7.jsonl").write_text("")
    assert main(["check-data", str(broken)]) == 1
    captured = capsys.readouterr()
    assert "CrowS-Pairs pairs" in captured.out and "StereoSet clusters" in captured.out
    assert "sent-weat7.jsonl: the file is empty" in captured.err
    assert "BBQ: 4 of 11 categories, 32 items" in captured.out
    assert "1 of 5 benchmark(s) failed: seat" in captured.err


def test_check_data_reports_a_missing_folder(tmp_path):
    finished = subprocess.run(
        [sys.executable, "-m", "lm_eval_bias.cli", "check-data", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
    )
    assert finished.returncode == 1
    assert "LM_EVAL_BIAS_DATA_DIR" in finished.stderr and "crows_pairs_anonymized.csv" in finished.stderr
    assert "5 of 5 benchmark(s) failed" in finished.stderr and "BBQ category Age (bbq_bias_age)" in finished.stderr
    assert "holistic_bias data file not found" in finished.stderr and "v1.1/descriptors.json" in finished.stderr
