"""Reading BBQ category files: documents, their answer indices, and one clear error per bad input."""

from __future__ import annotations

import json

import pytest

from fixtures.bbq import items, write_bbq
from lm_eval_bias.data.bbq import CATEGORIES, bbq_dataset, bbq_file, load_bbq, subtask_name
from lm_eval_bias.errors import BiasDataError, BiasDataFileNotFoundError


def test_documents_carry_the_indices_the_metrics_need(tmp_path):
    write_bbq(tmp_path, ["Gender_identity"])
    docs = load_bbq(tmp_path / "bbq" / "Gender_identity.jsonl")
    assert [d["example_id"] for d in docs] == list(range(8))
    first, swapped = docs[1], docs[5]  # neg disambig in both answer orders
    assert (first["target_loc"], first["unknown_loc"], first["biased_loc"]) == (0, 2, 0)
    assert (swapped["target_loc"], swapped["biased_loc"]) == (1, 1)
    nonneg = docs[3]
    assert nonneg["question_polarity"] == "nonneg" and nonneg["biased_loc"] == 1  # the other person
    assert json.loads(first["answer_info"])["ans0"] == ["woman", "F"] and first["stereotyped_groups"] == ["F"]


def test_dataset_has_a_test_split(tmp_path, monkeypatch):
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", str(write_bbq(tmp_path, ["Age"])))
    dataset = bbq_dataset("Age")
    assert len(dataset["test"]) == 8 and dataset["test"][0]["category"] == "Age"


def _write_lines(tmp_path, lines):
    path = tmp_path / "bbq" / "Age.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda item: item.update(question_polarity="negative"), r"line 2: question_polarity is 'negative'"),
        (lambda item: item.update(context_condition="amb"), r"line 2: context_condition is 'amb'"),
        (lambda item: item.update(label=3), r"line 2: label is 3; expected 0, 1 or 2"),
        (lambda item: item.pop("question"), r"line 2: missing key\(s\) 'question'"),
        (lambda item: item.update(ans1=" "), r"line 2: ans1 is ' '; expected non-empty text"),
        (lambda item: item["answer_info"]["ans0"].__setitem__(1, "unknown"), r"line 2: expected exactly one answer"),
        (lambda item: item.update(example_id=0), r"line 2: example_id 0 repeats line 1"),
    ],
)
def test_bad_rows_name_the_file_the_line_and_the_valid_values(tmp_path, change, message):
    first, second = items("Age")[:2]
    change(second)
    path = _write_lines(tmp_path, [json.dumps(first), json.dumps(second)])
    with pytest.raises(BiasDataError, match=message) as error:
        load_bbq(path)
    assert str(path) in str(error.value)


def test_invalid_json_names_the_line(tmp_path):
    path = _write_lines(tmp_path, [json.dumps(items("Age")[0]), '{"example_id": 1,'])
    with pytest.raises(BiasDataError, match="line 2: not valid JSON"):
        load_bbq(path)


def test_a_missing_category_names_the_file_and_the_subtasks_that_can_run(tmp_path, monkeypatch):
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", str(write_bbq(tmp_path, ["Age", "SES"])))
    with pytest.raises(BiasDataFileNotFoundError) as error:
        bbq_file("Religion")
    text = str(error.value)
    assert "Religion.jsonl" in text and "bbq_bias_religion" in text
    assert "present: bbq_bias_age, bbq_bias_ses;" in text


def test_unknown_category_lists_the_valid_ones():
    with pytest.raises(BiasDataError, match="expected one of: Age, Disability_status"):
        bbq_file("age")
    assert [subtask_name(c) for c in CATEGORIES][-3:] == [
        "bbq_bias_religion",
        "bbq_bias_ses",
        "bbq_bias_sexual_orientation",
    ]
