import subprocess
import sys

from lm_eval_bias.cli import main


def test_methods_lists_every_quantizer(capsys):
    from lm_eval_bias.model_wrappers.quantizers.auto import QUANTIZERS

    assert main(["methods"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == list(QUANTIZERS)


def test_check_data_counts_pairs(crows_pairs_fixture_csv, capsys):
    import pandas as pd

    expected = len(pd.read_csv(f"{crows_pairs_fixture_csv}/crows_pairs/crows_pairs_anonymized.csv"))
    assert main(["check-data", str(crows_pairs_fixture_csv)]) == 0
    assert f"{expected} CrowS-Pairs pairs" in capsys.readouterr().out


def test_check_data_reports_a_missing_folder(tmp_path):
    finished = subprocess.run([sys.executable, "-m", "lm_eval_bias.cli", "check-data", str(tmp_path / "nowhere")],
                              capture_output=True, text=True)
    assert finished.returncode == 2
    assert "LM_EVAL_BIAS_DATA_DIR" in finished.stderr and "crows_pairs_anonymized.csv" in finished.stderr
