"""docs/errors.md through the harness: quantized_hf refuses bad model_args before loading, and a CrowS-Pairs
sentence longer than the model's context is an error naming its pair (or, with long_inputs=truncate, recorded)."""

from __future__ import annotations

import pytest

from fixtures.harness import evaluate
from lm_eval_bias.errors import BiasInputTooLongError, BiasOptionError

HEADER = ",sent_more,sent_less,stereo_antistereo,bias_type,annotations,anon_writer,anon_annotators\n"
LONG = "A man " + "cried and " * 200 + "left."  # ~600 tokens; the tiny models read 128


@pytest.fixture
def long_pair_dir(tmp_path, monkeypatch):
    path = tmp_path / "crows_pairs" / "crows_pairs_anonymized.csv"
    path.parent.mkdir(parents=True)
    path.write_text(
        HEADER
        + "3,A man cried.,A woman cried.,stereo,age,[],a0,[]\n"
        + f"41,{LONG},A woman cried.,stereo,age,[],a0,[]\n"
    )
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize(
    "extra, message",
    [
        (",quantization=rtn,bitz=4", "quantization=rtn does not take bitz (did you mean 'bits'?); its options: bits,"),
        (",quantization=rtn,bits=4,bits=8", "--model_args: bits is given 2 times (bits=4, bits=8); give each key once"),
        (",dtype=float8", "--model_args: dtype=float8 is not a dtype a model loads in; use one of auto, float32,"),
    ],
)
def test_bad_model_args_are_refused_before_loading(tiny_gpt_neox_dir, monkeypatch, extra, message):
    import transformers

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_loading)
    with pytest.raises(BiasOptionError) as caught:
        evaluate("quantized_hf", f"pretrained={tiny_gpt_neox_dir}{extra}", ["crows_pairs_bias_age"])
    assert str(caught.value).startswith(message)


def test_missing_local_model_folder(tmp_path):
    with pytest.raises(BiasOptionError, match=r"pretrained=.*/no_model: no such folder"):
        evaluate("quantized_hf", f"pretrained={tmp_path / 'no_model'}", ["crows_pairs_bias_age"])


def test_unknown_metadata_key_is_refused(tiny_gpt_neox_dir):
    with pytest.raises(BiasOptionError, match=r"^--metadata: unknown key 'protocl' \(did you mean 'protocol'\?\)"):
        evaluate("quantized_hf", f"pretrained={tiny_gpt_neox_dir}", ["crows_pairs_bias_age"], metadata={"protocl": "x"})


def test_a_sentence_longer_than_the_context_names_its_pair(tiny_gpt_neox_dir, long_pair_dir):
    with pytest.raises(BiasInputTooLongError) as caught:
        evaluate("quantized_hf", f"pretrained={tiny_gpt_neox_dir}", ["crows_pairs_bias_age"])
    message = str(caught.value)
    assert message.startswith("task crows_pairs_bias_age, document 1 (pair_id 41): the input is ")
    assert "longer than the model's context of 128 tokens" in message and "long_inputs=truncate" in message


def test_long_inputs_truncate_is_recorded(tiny_gpt_neox_dir, long_pair_dir):
    results = evaluate("quantized_hf", f"pretrained={tiny_gpt_neox_dir},long_inputs=truncate", ["crows_pairs_bias_age"])
    assert results["config"]["long_inputs"] == {"rule": "truncate", "truncated": 1}


def test_a_duplicated_pair_is_recorded_by_the_task_that_reads_it(tiny_gpt_neox_dir, tmp_path, monkeypatch):
    path = tmp_path / "crows_pairs" / "crows_pairs_anonymized.csv"
    path.parent.mkdir(parents=True)
    path.write_text(
        HEADER
        + "3,A man cried.,A woman cried.,stereo,age,[],a0,[]\n"
        + "5,Old men.,Young men.,stereo,gender,[],a0,[]\n"
        + "8,A man cried.,A woman cried.,stereo,age,[],a0,[]\n"
    )
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", str(tmp_path))
    results = evaluate(
        "quantized_hf", f"pretrained={tiny_gpt_neox_dir}", ["crows_pairs_bias_age", "crows_pairs_bias_gender"]
    )
    warning = f"{path}: data row 3 (index 8) repeats the pair of data row 1 (index 3); both are scored"
    assert results["configs"]["crows_pairs_bias_age"]["metadata"]["data_warnings"] == [warning]
    assert "data_warnings" not in results["configs"]["crows_pairs_bias_gender"]["metadata"]
    assert len(results["samples"]["crows_pairs_bias_age"]) == 2  # both copies are scored


@pytest.mark.parametrize(
    "model, model_args, reason",
    [
        ("{tiny}", {"dtype": "float8"}, "BiasOptionError: --model_args: dtype=float8 is not a dtype a model loads in"),
        ("{tmp}/no_model", {}, "BiasOptionError: --model_args: pretrained={tmp}/no_model: no such folder"),
    ],
)
def test_a_study_cell_names_the_bad_option(tiny_gpt_neox_dir, tmp_path, model, model_args, reason):
    from lm_eval_bias.study.cell import Cell, run_cell

    model = model.format(tiny=tiny_gpt_neox_dir, tmp=tmp_path)
    cell = Cell(model, "m", None, "none", {"quantization": "none"}, "crows_pairs_bias_age", model_args=model_args)
    outcome = run_cell(cell, tmp_path / "study")
    assert outcome.status == "failed" and outcome.reason.startswith(reason.format(tmp=tmp_path))
    assert not list((tmp_path / "study").rglob("results_*.json"))


def test_a_masked_lm_names_the_pair_too_long_for_its_context(tiny_bert_dir, long_pair_dir):
    for extra in ("", ",long_inputs=truncate"):  # a pseudo-log-likelihood is never truncated
        with pytest.raises(BiasInputTooLongError) as caught:
            evaluate("quantized_hf", f"pretrained={tiny_bert_dir}{extra}", ["crows_pairs_bias_age"])
        message = str(caught.value)
        assert message.startswith("task crows_pairs_bias_age, document 1 (pair_id 41): the input is ")
        assert "with the masked LM's special tokens, longer than its context of 128 tokens" in message


def test_a_masked_lm_scores_an_input_that_just_fits(tiny_bert_dir, tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    assert len(tokenizer("man")["input_ids"]) == 3  # [CLS] man [SEP]: one token a word
    fits, too_long = " ".join(["man"] * 126), " ".join(["man"] * 127)  # 128 and 129 tokens with [CLS], [SEP]
    for name, sentence in (("fits", fits), ("too_long", too_long)):
        path = tmp_path / name / "crows_pairs" / "crows_pairs_anonymized.csv"
        path.parent.mkdir(parents=True)
        path.write_text(HEADER + f"3,{sentence},A woman cried.,stereo,age,[],a0,[]\n")
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", str(tmp_path / "fits"))
    results = evaluate("quantized_hf", f"pretrained={tiny_bert_dir}", ["crows_pairs_bias_age"])
    assert len(results["samples"]["crows_pairs_bias_age"]) == 1
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", str(tmp_path / "too_long"))
    with pytest.raises(BiasInputTooLongError, match=r"document 0 \(pair_id 3\): the input is 129 tokens"):
        evaluate("quantized_hf", f"pretrained={tiny_bert_dir}", ["crows_pairs_bias_age"])
