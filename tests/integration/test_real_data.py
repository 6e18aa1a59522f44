"""The real benchmark releases, where present: their counts, and one full CrowS-Pairs run.

The data folder is ``LM_EVAL_BIAS_DATA_DIR`` as set when the tests start, else ``../shared/data``
next to the repository; a test whose benchmark is in neither skips and says where it looked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fixtures.harness import evaluate, metric
from lm_eval_bias.data import DATA_DIR_ENV, benchmark_file, crows_pairs_dataset, load_crows_pairs, sources
from lm_eval_bias.data.seat import TESTS, load_seat_test
from lm_eval_bias.data.stereoset import load_stereoset

REAL_DATA = Path(os.environ.get(DATA_DIR_ENV) or Path(__file__).resolve().parents[3] / "shared" / "data")


def needs_real(benchmark: str):
    return pytest.mark.skipif(
        not (REAL_DATA / benchmark).exists(),
        reason=f"no {benchmark}/ under {REAL_DATA} (set {DATA_DIR_ENV} to the real data)",
    )


def percent(flags) -> float:
    flags = list(flags)
    return 100.0 * sum(flags) / len(flags)


@needs_real("crows_pairs")
def test_full_benchmark_file(tiny_gpt_neox_dir, monkeypatch):
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", str(REAL_DATA))
    results = evaluate("quantized_hf", f"pretrained={tiny_gpt_neox_dir}", ["crows_pairs_bias"], batch_size=64)
    samples = [s for task, items in results["samples"].items() for s in items]
    assert len(samples) == 1508
    prefers = [s["sent_more_score"] > s["sent_less_score"] for s in samples]
    assert metric(results, "crows_pairs_bias", "stereotype_score") == pytest.approx(percent(prefers), abs=1e-9)
    stereo = [
        s["sent_more_score"] > s["sent_less_score"]
        for s in samples
        if s["doc"]["stereo_antistereo"] == "stereo" and s["sent_more_score"] != s["sent_less_score"]
    ]
    assert metric(results, "crows_pairs_bias", "stereo_score") == pytest.approx(percent(stereo), abs=1e-9)


@needs_real("stereoset")
def test_shared_dev_set_counts():
    frame = load_stereoset(sources.benchmark_file("stereoset", data_dir=REAL_DATA))
    assert frame["split"].value_counts().to_dict() == {"intrasentence": 2106, "intersentence": 2123}
    intra = frame[frame["split"] == "intrasentence"]["bias_type"].value_counts().to_dict()
    assert intra == {"gender": 255, "profession": 810, "race": 962, "religion": 79}
    assert json.loads(json.dumps(frame.iloc[0].to_dict()))  # plain strings throughout


@needs_real("seat")
def test_shared_files_of_the_study_are_valid():
    for tests in TESTS.values():
        for file in tests.values():
            sets = load_seat_test(sources.benchmark_file("seat", data_dir=REAL_DATA, test=file))
            assert len(sets["targ1"]["examples"]) == len(sets["targ2"]["examples"]) >= 52


@needs_real("crows_pairs")
def test_real_file_counts(monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(REAL_DATA))
    df = load_crows_pairs(benchmark_file("crows_pairs"))
    assert len(df) == 1508
    assert df["pair_id"].tolist() == list(range(1508))
    assert df["stereo_antistereo"].value_counts().to_dict() == {"stereo": 1290, "antistereo": 218}
    assert df["bias_type"].value_counts().to_dict() == {
        "race-color": 516,
        "gender": 262,
        "socioeconomic": 172,
        "nationality": 159,
        "religion": 105,
        "age": 87,
        "sexual-orientation": 84,
        "physical-appearance": 63,
        "disability": 60,
    }
    ds = crows_pairs_dataset(bias_type="sexual_orientation")
    assert len(ds["test"]) == 84
    assert len(crows_pairs_dataset()["test"]) == 1508
