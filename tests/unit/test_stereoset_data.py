"""StereoSet loading: both layouts, validation errors, where the file is taken from."""

from __future__ import annotations

import pytest

from fixtures.stereoset_seat import (
    STEREOSET_ROWS,
    flat_records,
    nested_release,
    write_stereoset_jsonl,
    write_stereoset_nested,
)
from lm_eval_bias.data import sources
from lm_eval_bias.data.stereoset import blank_filler, load_stereoset, stereoset_dataset
from lm_eval_bias.errors import BiasDataError, BiasDataFileNotFoundError

CONTENT = ["split", "target", "bias_type", "context", "stereotype", "anti_stereotype", "unrelated"]


def test_both_layouts_give_the_same_clusters(tmp_path):
    flat = load_stereoset(write_stereoset_jsonl(tmp_path / "flat"))
    nested = load_stereoset(write_stereoset_nested(tmp_path / "nested"))
    assert len(flat) == len(STEREOSET_ROWS)

    def key(frame):
        return sorted(map(tuple, frame[CONTENT].values.tolist()))

    assert key(flat) == key(nested)
    assert flat["cluster_id"][0] == "line-1" and nested["cluster_id"][0] == "c0"
    # the nested file keeps each sentence with its gold label, whatever their order
    first = nested.iloc[0]
    assert (first.stereotype, first.anti_stereotype, first.unrelated) == STEREOSET_ROWS[0][4:]


def test_blank_filler_follows_bias_bench():
    assert blank_filler("The chess player was BLANK.", "The chess player was asian.") == "asian"
    assert blank_filler("The girl likes to BLANK.", "The girl likes to fix cars.") == "fix"
    assert blank_filler("BLANK men are here", "Well-off men are here") == "Welloff"
    assert blank_filler("a BLANK b BLANK", "a x b y") == "y"  # the last BLANK's word
    assert blank_filler("The man was BLANK.", "The man was") == ""


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"type": "intersentences"},
            (
                r"line 2, 'type': unknown value 'intersentences'; expected one of: "
                r"'intrasentence', 'intersentence'"
            ),
        ),
        (
            {"bias_type": "age"},
            (
                r"line 2, 'bias_type': unknown value 'age'; expected one of: 'gender', "
                r"'profession', 'race', 'religion'"
            ),
        ),
        ({"unrelated": "  "}, r"line 2, 'unrelated': '  ' is not a non-empty string"),
        ({"context": "The girl was happy."}, r"line 2, 'context': .* has no 'BLANK'"),
        ({"stereotype": "The girl was"}, r"line 2, 'stereotype': .* no word .* at the position of BLANK"),
    ],
)
def test_bad_value_names_the_line_field_and_choices(tmp_path, change, message):
    records = flat_records()
    records[1].update(change)
    with pytest.raises(BiasDataError, match=message) as err:
        load_stereoset(write_stereoset_jsonl(tmp_path, records))
    assert "stereoset_dev.jsonl" in str(err.value)


def test_missing_key_and_bad_lines(tmp_path):
    records = flat_records()
    del records[2]["anti-stereotype"]
    with pytest.raises(BiasDataError, match=r"line 3: missing key\(s\) 'anti-stereotype'"):
        load_stereoset(write_stereoset_jsonl(tmp_path / "a", records))
    path = write_stereoset_jsonl(tmp_path / "b")
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(BiasDataError, match=rf"line {len(STEREOSET_ROWS) + 1}: not valid JSON"):
        load_stereoset(path)
    path.write_text("")
    with pytest.raises(BiasDataError, match="the file is empty"):
        load_stereoset(path)
    with pytest.raises(BiasDataFileNotFoundError):
        load_stereoset(tmp_path / "missing.jsonl")


def test_nested_errors_name_the_cluster(tmp_path):
    release = nested_release()
    release["data"]["intrasentence"][3]["sentences"][0]["gold_label"] = "neutral"
    with pytest.raises(
        BiasDataError,
        match=r"data.intrasentence\[3\] \(id 'c3'\): sentence with gold_label "
        r"'neutral'; expected one of: 'stereotype', 'anti-stereotype'",
    ):
        load_stereoset(write_stereoset_nested(tmp_path / "a", release))
    release = nested_release()
    release["data"]["intersentence"][0]["sentences"].pop()
    with pytest.raises(BiasDataError, match=r"data.intersentence\[0\] .*no sentence with gold_label 'anti-stereotype'"):
        load_stereoset(write_stereoset_nested(tmp_path / "b", release))
    release = nested_release()
    release["data"]["intrasentence"][0]["bias_type"] = "nationality"
    with pytest.raises(BiasDataError, match=r"data.intrasentence\[0\] \(id 'c0'\), 'bias_type': unknown value"):
        load_stereoset(write_stereoset_nested(tmp_path / "c", release))


def test_data_folder_prefers_dev_json_and_accepts_the_jsonl(tmp_path, monkeypatch):
    monkeypatch.delenv(sources.DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(sources, "_download", lambda url: pytest.fail("must not download"))
    jsonl = write_stereoset_jsonl(tmp_path)
    assert sources.benchmark_file("stereoset", data_dir=tmp_path) == jsonl
    nested = write_stereoset_nested(tmp_path)
    assert sources.benchmark_file("stereoset", data_dir=tmp_path) == nested
    with pytest.raises(BiasDataFileNotFoundError, match=r"stereoset/dev.json \(or stereoset/stereoset_dev.jsonl\)"):
        sources.benchmark_file("stereoset", data_dir=tmp_path / "empty")


def test_default_source_is_the_authors_release(monkeypatch, tmp_path):
    monkeypatch.delenv(sources.DATA_DIR_ENV, raising=False)
    seen = []
    path = write_stereoset_nested(tmp_path)
    monkeypatch.setattr(sources, "_download", lambda url: seen.append(url) or str(path))
    assert sources.benchmark_file("stereoset") == path
    assert seen == ["https://raw.githubusercontent.com/moinnadeem/StereoSet/master/data/dev.json"]


def test_dataset_keeps_one_split_and_domain(tmp_path, monkeypatch):
    monkeypatch.setenv(sources.DATA_DIR_ENV, str(tmp_path))
    write_stereoset_jsonl(tmp_path)
    docs = stereoset_dataset("intrasentence", bias_type="profession")["validation"]
    expected = [r for r in STEREOSET_ROWS if r[0] == "intrasentence" and r[1] == "profession"]
    assert docs["target"] == [r[2] for r in expected]
    with pytest.raises(BiasDataError, match="unknown StereoSet bias type 'age'"):
        stereoset_dataset("intrasentence", bias_type="age")
    with pytest.raises(BiasDataError, match="unknown StereoSet split"):
        stereoset_dataset("both")


def test_a_file_is_parsed_once_per_version_and_reread_when_it_changes(tmp_path, monkeypatch):
    from lm_eval_bias.data import stereoset

    path = write_stereoset_jsonl(tmp_path)
    parses = []
    real = stereoset._parse
    monkeypatch.setattr(stereoset, "_parse", lambda p: parses.append(p) or real(p))
    stereoset._parsed.cache_clear()
    first = load_stereoset(path)
    first.loc[0, "context"] = "changed by a caller"  # a copy: the cached table is not touched
    again = load_stereoset(path)
    assert len(parses) == 1 and again["context"][0] == STEREOSET_ROWS[0][3]
    write_stereoset_jsonl(tmp_path, flat_records()[:2])  # the file changes (size): read again
    assert len(load_stereoset(path)) == 2 and len(parses) == 2
