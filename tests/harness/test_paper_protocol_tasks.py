"""`--metadata '{"protocol": "paper"}'` through lm_eval: the study's numbers from our tasks.

Expected values come from tests/fixtures/paper_reference.py (unbatched re-implementations of
the study's scores and of bias-bench's StereoSet evaluation), never from the code under test.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

from fixtures.corpus import CROWS_PAIRS_ROWS
from fixtures.harness import evaluate, metric, our_tasks
from fixtures.paper_reference import (
    reference_causal,
    reference_crows_masked,
    reference_stereoset_evaluation,
    reference_stereoset_masked,
)
from fixtures.stereoset_seat import nested_release, write_stereoset_nested

GENDER = [row for row in CROWS_PAIRS_ROWS if row[3] == "gender"]


@pytest.fixture(scope="module")
def test_split_dir(tmp_path_factory, crows_pairs_fixture_csv):
    """A data folder with only StereoSet's test.json (no dev file) and the CrowS-Pairs CSV."""
    import shutil
    from pathlib import Path

    folder = tmp_path_factory.mktemp("paper_data")
    release = nested_release()
    path = write_stereoset_nested(folder, release)
    path.rename(path.with_name("test.json"))
    shutil.copytree(Path(crows_pairs_fixture_csv) / "crows_pairs", folder / "crows_pairs")
    return folder, release


def _paper_run(folder, model_dir, tasks, monkeypatch, metadata=None, **kwargs):
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", str(folder))
    return evaluate(
        "quantized_hf",
        f"pretrained={model_dir}",
        tasks,
        task_manager=our_tasks({"protocol": "paper"} if metadata is None else metadata),
        **kwargs,
    )


def test_crows_pairs_causal_paper_scores(tiny_gpt_neox_dir, test_split_dir, monkeypatch, single_thread):
    results = _paper_run(test_split_dir[0], tiny_gpt_neox_dir, ["crows_pairs_bias_gender"], monkeypatch)
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt_neox_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt_neox_dir)
    samples = sorted(results["samples"]["crows_pairs_bias_gender"], key=lambda s: s["doc_id"])
    preferred = 0
    for sample, (more, less, _, _) in zip(samples, GENDER):
        want = reference_causal(model, tokenizer, more), reference_causal(model, tokenizer, less)
        assert sample["sent_more_score"] == pytest.approx(want[0], abs=1e-6)
        assert sample["sent_less_score"] == pytest.approx(want[1], abs=1e-6)
        preferred += want[0] > want[1]
    assert metric(results, "crows_pairs_bias_gender", "stereotype_score") == pytest.approx(
        100.0 * preferred / len(GENDER)
    )
    assert results["configs"]["crows_pairs_bias_gender"]["metadata"]["protocol"] == "paper"


def test_crows_pairs_masked_paper_skips_and_rounds(tiny_bert_dir, test_split_dir, monkeypatch, single_thread):
    results = _paper_run(test_split_dir[0], tiny_bert_dir, ["crows_pairs_bias"], monkeypatch)
    model = AutoModelForMaskedLM.from_pretrained(tiny_bert_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    scored = {}
    for more, less, direction, bias_type in CROWS_PAIRS_ROWS:
        # bias-bench compares (sent1, sent2): the anti-stereotypical sentence first for antistereo pairs
        swap = direction == "antistereo"
        pair = reference_crows_masked(model, tokenizer, *((less, more) if swap else (more, less)))
        if pair is not None:
            scored.setdefault(bias_type, []).append((pair[::-1] if swap else pair, direction))
    for bias_type, pairs in scored.items():
        task = f"crows_pairs_bias_{bias_type.replace('-', '_')}"
        assert results["results"][task]["sample_len"] == len(pairs)
        # bias-bench's "Metric score": stereo pairs won by sent_more plus antistereo pairs won by it, over N
        wins = sum(more > less for (more, less), _ in pairs)
        assert metric(results, task, "stereotype_score") == pytest.approx(100.0 * wins / len(pairs))
        assert metric(results, task, "tie_rate") == pytest.approx(
            100.0 * sum(more == less for (more, less), _ in pairs) / len(pairs)
        )


def _release_clusters(release):
    clusters = []
    for cluster in release["data"]["intrasentence"]:
        ids = {s["gold_label"]: s["id"] for s in cluster["sentences"]}
        clusters.append(
            (cluster["bias_type"], cluster["target"], (ids["stereotype"], ids["anti-stereotype"], ids["unrelated"]))
        )
    return clusters


@pytest.mark.parametrize("kind", ["causal", "masked"])
def test_stereoset_paper_reads_test_split_and_matches_bias_bench(
    kind, tiny_gpt_neox_dir, tiny_roberta_dir, test_split_dir, monkeypatch, single_thread
):
    folder, release = test_split_dir
    model_dir = tiny_gpt_neox_dir if kind == "causal" else tiny_roberta_dir  # its path holds "roberta"
    results = _paper_run(folder, model_dir, ["stereoset_bias_intrasentence"], monkeypatch)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    scores = {}
    if kind == "causal":
        model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        score = lambda context, sentence: reference_causal(model, tokenizer, sentence)  # noqa: E731
    else:
        model = AutoModelForMaskedLM.from_pretrained(model_dir).eval()
        score = lambda context, sentence: reference_stereoset_masked(model, tokenizer, context, sentence, True)  # noqa: E731
    for cluster in release["data"]["intrasentence"]:
        for sentence in cluster["sentences"]:
            scores[sentence["id"]] = score(cluster["context"], sentence["sentence"])
    expected = reference_stereoset_evaluation(_release_clusters(release), scores)
    for domain, values in expected.items():
        task = "stereoset_bias_intrasentence" + ("" if domain == "overall" else f"_{domain}")
        for name in ("ss", "lms", "icat"):
            assert metric(results, task, name) == pytest.approx(values[name], abs=1e-4), (task, name)
        if domain != "overall":
            assert results["configs"][task]["metadata"]["stereoset_split"] == "test"


def test_default_protocol_unchanged(tiny_gpt_neox_dir, test_split_dir, monkeypatch, single_thread):
    plain = _paper_run(test_split_dir[0], tiny_gpt_neox_dir, ["crows_pairs_bias_gender"], monkeypatch, metadata={})
    named = _paper_run(
        test_split_dir[0], tiny_gpt_neox_dir, ["crows_pairs_bias_gender"], monkeypatch, metadata={"protocol": "default"}
    )
    values = {k: v for k, v in plain["results"]["crows_pairs_bias_gender"].items() if "stderr" not in k}
    assert json.dumps(values, sort_keys=True, default=str) == json.dumps(
        {k: named["results"]["crows_pairs_bias_gender"][k] for k in values}, sort_keys=True, default=str
    )
    assert plain["configs"]["crows_pairs_bias_gender"]["metadata"]["protocol"] == "default"
    # the default protocol conditions every token on the prefix in one pass
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt_neox_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt_neox_dir)
    tokens = tokenizer.encode(GENDER[0][0], add_special_tokens=False)
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([[tokenizer.eos_token_id] + tokens])).logits[0].double(), -1)
    one_pass = sum(float(logprobs[i, t]) for i, t in enumerate(tokens)) / len(tokens)
    first = min(plain["samples"]["crows_pairs_bias_gender"], key=lambda s: s["doc_id"])
    assert first["sent_more_score"] == pytest.approx(one_pass, abs=1e-6)


def test_bad_protocol_is_named(tiny_gpt_neox_dir, test_split_dir, monkeypatch):
    from lm_eval_bias.errors import BiasOptionError  # one line through lm_eval (docs/errors.md)

    with pytest.raises(BiasOptionError, match="protocol 'study'.*'default', 'paper'"):
        _paper_run(
            test_split_dir[0],
            tiny_gpt_neox_dir,
            ["crows_pairs_bias_gender"],
            monkeypatch,
            metadata={"protocol": "study"},
        )


@pytest.mark.parametrize("quantization", ["none", "dynamic_int8"])
def test_paper_scores_batch_invariant(tiny_gpt_neox_dir, tiny_bert_dir, quantization, single_thread):
    from lm_eval_bias.model_wrappers.quantized_hf import QuantizedHFLM

    pairs = [SimpleNamespace(args=(row[0], row[1])) for row in CROWS_PAIRS_ROWS]
    stereoset = [
        SimpleNamespace(args=("The girl was BLANK at school.", f"The girl was {w} at school."))
        for w in ("lazy", "smart", "cake")
    ]
    for model_dir in (tiny_gpt_neox_dir, tiny_bert_dir):
        answers = []
        for batch_size in (1, 8, 32):
            lm = QuantizedHFLM(pretrained=model_dir, quantization=quantization, batch_size=batch_size, device="cpu")
            crows = [
                None if pair is None else tuple(float(s[0]) for s in pair)
                for pair in lm.crows_pairs_paper_score(pairs, disable_tqdm=True)
            ]
            answers.append((crows, lm.stereoset_paper_score(stereoset, disable_tqdm=True)))
        for other in answers[1:]:  # as the default protocol: equal up to float summation order
            assert [p is None for p in other[0]] == [p is None for p in answers[0][0]]
            pairs_scored = [(a, b) for a, b in zip(answers[0][0], other[0]) if a is not None]
            assert [x for a, _ in pairs_scored for x in a] == pytest.approx(
                [x for _, b in pairs_scored for x in b], abs=1e-5
            )
            assert other[1] == pytest.approx(answers[0][1], abs=1e-6), model_dir
