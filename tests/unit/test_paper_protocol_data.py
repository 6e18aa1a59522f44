"""StereoSet's test split: bias-bench's test.json, read and validated like dev.json, and check-data."""

from __future__ import annotations

import json

import pytest

from fixtures.stereoset_seat import STEREOSET_ROWS, nested_release
from lm_eval_bias.commands.check_data import check_stereoset_test
from lm_eval_bias.data.sources import CANONICAL_FILES
from lm_eval_bias.data.stereoset import stereoset_dataset, stereoset_file
from lm_eval_bias.errors import BiasDataError


def _write_test(folder, release) -> None:
    path = folder / "stereoset" / "test.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(release))


def test_test_split_reads_test_json_from_the_data_folder(tmp_path):
    _write_test(tmp_path, nested_release())
    assert stereoset_file("test", data_dir=tmp_path) == tmp_path / "stereoset" / "test.json"
    gender = stereoset_dataset("intrasentence", bias_type="gender", data_dir=tmp_path, stereoset_split="test")[
        "validation"
    ]
    expected = [row for row in STEREOSET_ROWS if row[0] == "intrasentence" and row[1] == "gender"]
    assert gender["context"] == [row[3] for row in expected]
    assert gender["anti_stereotype"] == [row[5] for row in expected]


def test_test_split_default_source_is_bias_bench():
    relative, url = CANONICAL_FILES["stereoset_test"]
    assert relative == "stereoset/test.json"
    assert url == "https://raw.githubusercontent.com/McGill-NLP/bias-bench/main/data/stereoset/test.json"


def test_missing_test_json_names_the_file_and_the_layout(tmp_path):
    (tmp_path / "stereoset").mkdir()
    (tmp_path / "stereoset" / "dev.json").write_text(json.dumps(nested_release()))  # the dev file does not stand in
    with pytest.raises(BiasDataError, match=r"stereoset_test data file not found: .*stereoset/test\.json"):
        stereoset_dataset("intrasentence", data_dir=tmp_path, stereoset_split="test")


def test_test_json_is_validated_like_dev_json(tmp_path):
    release = nested_release()
    release["data"]["intrasentence"][1]["bias_type"] = "age"
    _write_test(tmp_path, release)
    with pytest.raises(
        BiasDataError, match=r"test\.json: data\.intrasentence\[1\] \(id 'c1'\), 'bias_type': unknown value 'age'"
    ):
        stereoset_dataset("intrasentence", data_dir=tmp_path, stereoset_split="test")


def test_unknown_file_split_names_the_choices(tmp_path):
    with pytest.raises(BiasDataError, match="unknown stereoset_split 'validation'; expected one of: 'dev', 'test'"):
        stereoset_file("validation", data_dir=tmp_path)


def test_check_data_covers_the_test_split(tmp_path):
    _write_test(tmp_path, nested_release())
    lines = check_stereoset_test(tmp_path)
    n_clusters = len(STEREOSET_ROWS)
    assert lines[0] == f"{tmp_path / 'stereoset' / 'test.json'}: {n_clusters} StereoSet clusters"
    assert any("intrasentence" in line and "religion" in line and line.rstrip().endswith(" 3") for line in lines)
