"""docs/errors.md through the stock `lm_eval` command: one line, a non-zero exit, no traceback, no results file."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

HEADER = ",sent_more,sent_less,stereo_antistereo,bias_type,annotations,anon_writer,anon_annotators\n"


def lm_eval(model_args: str, output, data_dir, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "lm_eval", "--model", "quantized_hf", "--model_args", model_args]
    command += ["--tasks", "crows_pairs_bias_age", "--device", "cpu", "--output_path", str(output), *extra]
    environment = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "LM_EVAL_BIAS_DATA_DIR": str(data_dir),
        **(env or {}),
    }
    for name in ("LM_EVAL_BIAS_TRACEBACK", "LMEVAL_LOG_LEVEL"):
        if name not in (env or {}):
            environment.pop(name, None)
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """CrowS-Pairs with one age pair whose sentence holds a NUL byte (data row 2, index 9)."""
    folder = tmp_path_factory.mktemp("nul_data")
    path = folder / "crows_pairs" / "crows_pairs_anonymized.csv"
    path.parent.mkdir(parents=True)
    path.write_text(
        HEADER + "4,A man cried.,A woman cried.,stereo,age,[],a0,[]\n9,Old\x00 men.,Young men.,stereo,age,[],a0,[]\n"
    )
    return folder


@pytest.mark.parametrize(
    "case, extra_args, message",
    [
        (
            "repeated key",
            ",quantization=rtn,bits=4,bits=8",
            "lm-eval-bias: --model_args: bits is given 2 times (bits=4, bits=8); give each key once",
        ),
        (
            "NUL byte",
            "",
            "data row 2 (index 9), column 'sent_more': control character(s) U+0000 (NUL) in the sentence",
        ),
    ],
)
def test_one_line_no_traceback(tiny_gpt_neox_dir, data_dir, tmp_path, case, extra_args, message):
    output = tmp_path / "out"
    finished = lm_eval(f"pretrained={tiny_gpt_neox_dir}{extra_args}", output, data_dir)
    assert finished.returncode == 1, finished.stderr[-2000:]
    assert "Traceback" not in finished.stderr
    last = finished.stderr.strip().splitlines()[-1]
    assert last.startswith("lm-eval-bias: ") and message in last
    assert not (output.exists() and any(output.rglob("*.json*")))


def test_traceback_on_request(tiny_gpt_neox_dir, data_dir, tmp_path):
    output = tmp_path / "out"
    finished = lm_eval(
        f"pretrained={tiny_gpt_neox_dir}",
        output,
        data_dir,
        "--metadata",
        '{"protocl": "paper"}',
        env={"LM_EVAL_BIAS_TRACEBACK": "1"},
    )
    assert finished.returncode == 1
    assert "Traceback (most recent call last)" in finished.stderr
    assert "BiasOptionError: --metadata: unknown key 'protocl' (did you mean 'protocol'?)" in finished.stderr
    assert not (output.exists() and any(output.rglob("*.json*")))
