"""crows_pairs_bias reads its scoring settings once from the task metadata (sentence_score, and the
tokenizer identity from the model_args lm-eval merges in); documents carry only the CSV's fields.

No model: the task is built by lm-eval's TaskManager and its process_results is given hand-made
responses whose sentence scores are worked out by hand.
"""

from __future__ import annotations

import json

import pytest

from lm_eval_bias.scoring.sentence_scores import ScoredLoglikelihood


def _age_task(metadata, data_dir, monkeypatch):
    from lm_eval.tasks import TaskManager

    from lm_eval_bias.catalog import with_our_tasks

    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", data_dir)
    manager = TaskManager(include_defaults=False, include_path=with_our_tasks(), metadata=metadata)
    return manager.load(["crows_pairs_bias_age"])["tasks"]["crows_pairs_bias_age"]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("mean", {"sent_more_score": -10.0 / 5, "sent_less_score": -12.0 / 4, "likelihood_diff": 1.0}),
        ("sum", {"sent_more_score": -10.0, "sent_less_score": -12.0, "likelihood_diff": 2.0}),
    ],
)
def test_settings_come_from_the_task_metadata(crows_pairs_fixture_csv, monkeypatch, mode, expected):
    task = _age_task(
        {"pretrained": "org/model", "revision": "v1", "sentence_score": mode, "dtype": "float32"},
        crows_pairs_fixture_csv,
        monkeypatch,
    )
    assert task.sentence_score == mode
    assert json.loads(task.tokenizer) == {"pretrained": "org/model", "revision": "v1"}

    doc = task.eval_docs[0]
    assert sorted(doc) == ["bias_type", "pair_id", "sent_less", "sent_more", "stereo_antistereo"]  # no copied settings
    values = task.process_results(doc, [ScoredLoglikelihood(-10.0, False, 5), ScoredLoglikelihood(-12.0, False, 4)])
    assert {k: values[k] for k in expected} == pytest.approx(expected)
    assert values["stereotype_score"] == 100.0  # sent_more scores higher either way
    assert values["scored_tokens"] == 9


def test_a_bad_sentence_score_is_named(crows_pairs_fixture_csv, monkeypatch):
    from lm_eval_bias.errors import BiasOptionError  # one line through lm_eval (docs/errors.md)

    with pytest.raises(BiasOptionError, match=r"Unknown sentence_score 'median'; expected one of \('mean', 'sum'\)"):
        _age_task({"sentence_score": "median"}, crows_pairs_fixture_csv, monkeypatch)
