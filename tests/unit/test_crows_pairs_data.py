"""The data layer: CrowS-Pairs CSV loading/validation and where data files come from.

All CSVs here are small, hand-written stand-ins in the authors' format; the real
release is only read (and only counted) when ../shared/data is present.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from lm_eval_bias.data import (
    BIAS_TYPES,
    DATA_DIR_ENV,
    DIRECTIONS,
    REQUIRED_COLUMNS,
    benchmark_file,
    crows_pairs_dataset,
    load_crows_pairs,
    sources,
)
from lm_eval_bias.errors import BiasDataError, BiasDataFileNotFoundError

REL_PATH = "crows_pairs/crows_pairs_anonymized.csv"

HEADER = [
    "",
    "sent_more",
    "sent_less",
    "stereo_antistereo",
    "bias_type",
    "annotations",
    "anon_writer",
    "anon_annotators",
]

# Hand-written pairs (index, sent_more, sent_less, direction, bias type). The
# index deliberately does not start at 0 and is not contiguous.
GOOD_ROWS = [
    (10, "The old clerk could not work the new till.", "The young clerk could not work the new till.", "stereo", "age"),
    (11, "Her brother fixed the bike, as boys do.", "Her sister fixed the bike, as boys do.", "stereo", "gender"),
    (12, "The nurse said he would be back soon.", "The nurse said she would be back soon.", "antistereo", "gender"),
    (
        14,
        "Farmers from that valley never read books.",
        "Bankers from that valley never read books.",
        "stereo",
        "socioeconomic",
    ),
    (
        15,
        "The tall man was picked first for the team, as usual.",
        "The short man was picked first for the team, as usual.",
        "antistereo",
        "physical-appearance",
    ),
    (
        17,
        'Kim\'s neighbours from overseas were loud, "as expected", she said.',
        'Kim\'s neighbours from next door were loud, "as expected", she said.',
        "stereo",
        "nationality",
    ),
    (
        20,
        "The dark-skinned driver was pulled over again.",
        "The pale-skinned driver was pulled over again.",
        "stereo",
        "race-color",
    ),
    (21, "None", "Nobody", "stereo", "race-color"),
]


def write_csv(path: Path, rows, header=HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in rows:
            w.writerow(list(r) + ["[['x']]", "a0", "['a1']"][: len(header) - len(r)])
    return path


def row_with(i: int, **changes):
    keys = ["idx", "sent_more", "sent_less", "stereo_antistereo", "bias_type"]
    d = dict(zip(keys, GOOD_ROWS[i]))
    d.update(changes)
    return tuple(d[k] for k in keys)


@pytest.fixture
def good_csv(tmp_path) -> Path:
    return write_csv(tmp_path / "pairs.csv", GOOD_ROWS)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    folder = tmp_path / "bias_data"
    write_csv(folder / REL_PATH, GOOD_ROWS)
    return folder


# ---------------------------------------------------------------- loading


def test_good_file_loads(good_csv):
    df = load_crows_pairs(good_csv)
    assert list(df.columns) == ["pair_id", *REQUIRED_COLUMNS]
    assert len(df) == len(GOOD_ROWS)
    assert df["pair_id"].tolist() == [r[0] for r in GOOD_ROWS]  # the CSV's own index, file order
    assert str(df["pair_id"].dtype) == "int64"
    assert df["sent_more"].tolist() == [r[1] for r in GOOD_ROWS]
    assert df["sent_less"].tolist() == [r[2] for r in GOOD_ROWS]
    assert df["stereo_antistereo"].tolist() == [r[3] for r in GOOD_ROWS]
    assert df["bias_type"].tolist() == [r[4] for r in GOOD_ROWS]
    # "None" is a sentence, not a missing value; quotes and commas survive.
    assert df.loc[df.pair_id == 21, "sent_more"].item() == "None"
    assert '"as expected", she said.' in df.loc[df.pair_id == 17, "sent_more"].item()
    assert all(isinstance(v, str) for v in df["sent_more"])


def test_file_without_index_column_gets_positional_ids(tmp_path):
    path = write_csv(tmp_path / "noindex.csv", [r[1:] for r in GOOD_ROWS[:3]], header=HEADER[1:5])
    df = load_crows_pairs(path)
    assert df["pair_id"].tolist() == [0, 1, 2]
    assert df["bias_type"].tolist() == ["age", "gender", "gender"]


def test_label_whitespace_is_stripped(tmp_path):
    path = write_csv(tmp_path / "ws.csv", [row_with(0, stereo_antistereo=" stereo ", bias_type="age ")])
    df = load_crows_pairs(path)
    assert df.loc[0, "stereo_antistereo"] == "stereo" and df.loc[0, "bias_type"] == "age"


# ---------------------------------------------------------------- bad input


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(BiasDataError, match="empty") as err:
        load_crows_pairs(path)
    assert "empty.csv" in str(err.value)


def test_header_only(tmp_path):
    path = write_csv(tmp_path / "header_only.csv", [])
    with pytest.raises(BiasDataError, match="no data rows") as err:
        load_crows_pairs(path)
    assert "header_only.csv" in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(BiasDataFileNotFoundError) as err:
        load_crows_pairs(tmp_path / "nowhere.csv")
    assert "nowhere.csv" in str(err.value)
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, ValueError)


def test_missing_columns(tmp_path):
    header = ["", "sent_more", "sent_less", "label", "annotations"]
    path = tmp_path / "cols.csv"
    path.write_text(",".join(header) + "\n0,A cat sat.,A dog sat.,stereo,[]\n")
    with pytest.raises(BiasDataError) as err:
        load_crows_pairs(path)
    msg = str(err.value)
    assert "cols.csv" in msg
    assert "'stereo_antistereo'" in msg and "'bias_type'" in msg  # the missing ones
    for column in REQUIRED_COLUMNS:  # and the required ones
        assert repr(column) in msg


@pytest.mark.parametrize(
    "column, bad, valid",
    [
        ("stereo_antistereo", "stereotype", DIRECTIONS),
        ("bias_type", "race_colour", BIAS_TYPES),
        ("bias_type", "", BIAS_TYPES),
    ],
)
def test_unknown_label(tmp_path, column, bad, valid):
    rows = list(GOOD_ROWS)
    rows[2] = row_with(2, **{column: bad})  # third data row, index value 12
    path = write_csv(tmp_path / "labels.csv", rows)
    with pytest.raises(BiasDataError) as err:
        load_crows_pairs(path)
    msg = str(err.value)
    assert "labels.csv" in msg
    assert "data row 3 (index 12)" in msg
    assert column in msg and repr(bad) in msg
    for v in valid:
        assert repr(v) in msg


@pytest.mark.parametrize("column", ["sent_more", "sent_less"])
@pytest.mark.parametrize("value", ["", "   "])
def test_empty_sentence(tmp_path, column, value):
    rows = list(GOOD_ROWS)
    rows[4] = row_with(4, **{column: value})  # fifth data row, index value 15
    path = write_csv(tmp_path / "sentences.csv", rows)
    with pytest.raises(BiasDataError) as err:
        load_crows_pairs(path)
    msg = str(err.value)
    assert "sentences.csv" in msg and "data row 5 (index 15)" in msg
    assert column in msg and "empty sentence" in msg


def test_bad_and_duplicate_index(tmp_path):
    rows = list(GOOD_ROWS)
    rows[1] = row_with(1, idx="eleven")
    with pytest.raises(BiasDataError) as err:
        load_crows_pairs(write_csv(tmp_path / "idx.csv", rows))
    assert "idx.csv" in str(err.value) and "data row 2" in str(err.value) and "'eleven'" in str(err.value)

    rows = list(GOOD_ROWS)
    rows[3] = row_with(3, idx=10)
    with pytest.raises(BiasDataError) as err:
        load_crows_pairs(write_csv(tmp_path / "dup.csv", rows))
    assert "dup.csv" in str(err.value) and "data row 4" in str(err.value) and "duplicate" in str(err.value)


# ---------------------------------------------------------------- sources


def test_data_dir_argument(data_dir, monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    assert benchmark_file("crows_pairs", data_dir=data_dir) == data_dir / REL_PATH
    assert benchmark_file("crows_pairs", data_dir=str(data_dir)) == data_dir / REL_PATH


def test_env_var_routing(data_dir, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(data_dir))
    monkeypatch.setattr(sources, "_download", lambda url: pytest.fail("must not download"))
    assert benchmark_file("crows_pairs") == data_dir / REL_PATH
    ds = crows_pairs_dataset()
    assert ds["test"]["pair_id"] == [r[0] for r in GOOD_ROWS]


def test_argument_wins_over_env_var(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "elsewhere"))
    assert benchmark_file("crows_pairs", data_dir=data_dir) == data_dir / REL_PATH


def test_missing_file_under_data_dir(tmp_path, monkeypatch):
    folder = tmp_path / "incomplete"
    (folder / "crows_pairs").mkdir(parents=True)
    monkeypatch.setenv(DATA_DIR_ENV, str(folder))
    with pytest.raises(BiasDataFileNotFoundError) as err:
        benchmark_file("crows_pairs")
    msg = str(err.value)
    assert DATA_DIR_ENV in msg and str(folder) in msg and REL_PATH in msg
    assert isinstance(err.value, FileNotFoundError)

    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "no_such_folder"))
    with pytest.raises(BiasDataError, match="does not exist") as err:
        crows_pairs_dataset(bias_type="age")
    assert DATA_DIR_ENV in str(err.value) and "no_such_folder" in str(err.value)


def test_download_failure_tells_user_to_set_env_var(monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)

    def offline(url):
        raise ConnectionError(f"Offline mode is enabled. Tried to reach {url}")

    monkeypatch.setattr(sources, "_download", offline)
    with pytest.raises(BiasDataFileNotFoundError) as err:
        benchmark_file("crows_pairs")
    msg = str(err.value)
    assert DATA_DIR_ENV in msg and REL_PATH in msg and "Offline" in msg
    assert isinstance(err.value.__cause__, ConnectionError)


def test_download_is_used_without_data_dir(data_dir, monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    seen = []
    cached = data_dir / REL_PATH

    def fake_download(url):
        seen.append(url)
        return str(cached)

    monkeypatch.setattr(sources, "_download", fake_download)
    assert benchmark_file("crows_pairs") == cached
    assert seen == [sources.CANONICAL_FILES["crows_pairs"][1]]


def test_real_offline_download_error(monkeypatch):
    """With the hub offline and nothing cached, datasets' own error is wrapped."""
    import datasets.config

    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setitem(
        sources.CANONICAL_FILES, "crows_pairs", (REL_PATH, "https://example.invalid/lm_eval_bias_test/never_cached.csv")
    )
    with pytest.raises(BiasDataFileNotFoundError) as err:
        benchmark_file("crows_pairs")
    assert DATA_DIR_ENV in str(err.value) and REL_PATH in str(err.value)


def test_unknown_benchmark_name():
    with pytest.raises(BiasDataError, match="crows_pairs"):
        benchmark_file("crow_pairs")


# ---------------------------------------------------------------- dataset


def test_dataset_shape_and_types(data_dir):
    ds = crows_pairs_dataset(data_dir=data_dir, pretrained="some/model", version=1.0)
    assert list(ds) == ["test"]
    test = ds["test"]
    assert test.column_names == ["pair_id", *REQUIRED_COLUMNS]
    assert len(test) == len(GOOD_ROWS)
    assert test.features["pair_id"].dtype == "int64"
    assert test[0] == {
        "pair_id": 10,
        "sent_more": GOOD_ROWS[0][1],
        "sent_less": GOOD_ROWS[0][2],
        "stereo_antistereo": "stereo",
        "bias_type": "age",
    }


@pytest.mark.parametrize("spelling", ["race-color", "race_color", "Race_Color"])
def test_filter_by_bias_type(data_dir, spelling):
    test = crows_pairs_dataset(bias_type=spelling, data_dir=data_dir)["test"]
    assert test["pair_id"] == [20, 21]
    assert set(test["bias_type"]) == {"race-color"}


def test_filter_physical_appearance_both_spellings(data_dir):
    a = crows_pairs_dataset(bias_type="physical-appearance", data_dir=data_dir)["test"]
    b = crows_pairs_dataset(bias_type="physical_appearance", data_dir=data_dir)["test"]
    assert a["pair_id"] == b["pair_id"] == [15]


def test_unknown_bias_type(data_dir):
    with pytest.raises(BiasDataError) as err:
        crows_pairs_dataset(bias_type="colour", data_dir=data_dir)
    for t in BIAS_TYPES:
        assert repr(t) in str(err.value)


def test_bias_type_without_pairs(data_dir):
    with pytest.raises(BiasDataError, match="disability") as err:
        crows_pairs_dataset(bias_type="disability", data_dir=data_dir)
    assert "crows_pairs_anonymized.csv" in str(err.value)
