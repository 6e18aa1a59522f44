"""The distillation loss, layer selection and the teacher record, without training anything."""

from __future__ import annotations

import json
import math

import pytest
import torch

from lm_eval_bias.distillation.loss import distillation_loss
from lm_eval_bias.distillation.student import evenly_spaced, parse_layer_spec, student_config
from lm_eval_bias.distillation_record import known_teacher, resolve_record


def _softmax(row: list[float], t: float) -> list[float]:
    exps = [math.exp(x / t) for x in row]
    return [e / sum(exps) for e in exps]


def _direct(student, teacher, labels, t, alpha, causal):
    """The loss written out token by token: positions, softmaxes, sums."""
    kls, ces = [], []
    for b in range(len(labels)):
        for i in range(len(labels[b])):
            target_at = i + 1 if causal else i
            if target_at >= len(labels[b]) or labels[b][target_at] == -100:
                continue
            p, q = _softmax(teacher[b][i], t), _softmax(student[b][i], t)
            kls.append(sum(pk * (math.log(pk) - math.log(qk)) for pk, qk in zip(p, q)))
            ces.append(-math.log(_softmax(student[b][i], 1.0)[labels[b][target_at]]))
    kl, ce = sum(kls) / len(kls), sum(ces) / len(ces)
    return alpha * t * t * kl + (1 - alpha) * ce, kl, ce, len(kls)


# batch 2, length 4, vocab 3; -100 marks padding / unscored positions
STUDENT = [
    [[1.0, 0.0, -1.0], [0.5, 0.2, 0.1], [2.0, -1.0, 0.0], [0.0, 0.0, 0.0]],
    [[-0.5, 1.5, 0.3], [0.1, 0.1, 3.0], [1.0, 1.0, -2.0], [0.7, -0.7, 0.0]],
]
TEACHER = [
    [[2.0, 0.5, -0.5], [0.0, 1.0, 0.0], [1.5, -0.5, 0.5], [0.3, 0.2, 0.1]],
    [[0.0, 2.0, 0.0], [-1.0, 0.0, 2.5], [0.5, 2.0, -1.0], [1.0, 0.0, -1.0]],
]
LABELS = [[0, 2, 1, -100], [1, -100, 0, 2]]


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("t,alpha", [(1.0, 0.5), (2.0, 0.5), (3.0, 0.9), (0.5, 0.0), (2.0, 1.0)])
def test_loss_equals_a_direct_computation(causal, t, alpha):
    result = distillation_loss(
        torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(LABELS), temperature=t, alpha=alpha, causal=causal
    )
    loss, kl, ce, n = _direct(STUDENT, TEACHER, LABELS, t, alpha, causal)
    assert result.tokens == n == (4 if causal else 6)
    assert result.loss.item() == pytest.approx(loss, rel=1e-5)
    assert result.kl.item() == pytest.approx(kl, rel=1e-5)
    assert result.ce.item() == pytest.approx(ce, rel=1e-5)


def test_loss_gradient_flows_to_the_student_only():
    student, teacher = torch.tensor(STUDENT, requires_grad=True), torch.tensor(TEACHER, requires_grad=True)
    distillation_loss(student, teacher, torch.tensor(LABELS)).loss.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_identical_logits_have_no_kl_and_bad_arguments_are_refused():
    logits = torch.tensor(TEACHER)
    assert distillation_loss(logits, logits.clone(), torch.tensor(LABELS)).kl.item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="vocabulary"):
        distillation_loss(logits[..., :2], logits, torch.tensor(LABELS))
    with pytest.raises(ValueError, match="alpha"):
        distillation_loss(logits, logits, torch.tensor(LABELS), alpha=1.5)
    with pytest.raises(ValueError, match="temperature"):
        distillation_loss(logits, logits, torch.tensor(LABELS), temperature=0)


def test_layer_specs():
    assert parse_layer_spec("half", 12) == [0, 2, 4, 6, 8, 10]  # DistilBERT's choice from BERT-base
    assert parse_layer_spec("half", 18) == parse_layer_spec("layers=9", 18) == list(range(0, 18, 2))
    assert parse_layer_spec("keep=0,5,11", 12) == [0, 5, 11]
    assert parse_layer_spec("keep=3", 12) == [3]
    assert evenly_spaced(3, 12) == [0, 4, 8]
    assert parse_layer_spec("some/checkpoint", 12) is None
    for bad in ("layers=13", "layers=0", "keep=0,0", "keep=0,12", "keep="):
        with pytest.raises(ValueError):
            parse_layer_spec(bad, 12)


def test_student_config_keeps_the_per_layer_settings_of_its_layers():
    from transformers import Gemma3TextConfig

    types = ["sliding_attention"] * 5 + ["full_attention"]
    teacher = Gemma3TextConfig(
        num_hidden_layers=6,
        layer_types=types,
        hidden_size=16,
        intermediate_size=32,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        vocab_size=50,
    )
    config = student_config(teacher, [0, 3, 5])
    assert config.num_hidden_layers == 3
    assert config.layer_types == ["sliding_attention", "sliding_attention", "full_attention"]
    assert config.hidden_size == 16 and config.vocab_size == 50


def test_known_pairs():
    assert known_teacher("distilgpt2") == "gpt2"
    assert known_teacher("distilbert/distilgpt2") == "openai-community/gpt2"
    assert known_teacher("distilbert-base-uncased") == "bert-base-uncased"
    assert known_teacher("/models/distilroberta-base/") == "roberta-base"
    assert known_teacher("gpt2") is None and known_teacher(None) is None


def test_record_precedence(tmp_path):
    from types import SimpleNamespace

    model = SimpleNamespace(config=SimpleNamespace(distillation={"teacher": "/t", "teacher_revision": None, "step": 4}))

    assert resolve_record(model, "x")["teacher"] == "/t"
    assert resolve_record(model, "x")["teacher_source"] == "checkpoint"
    explicit = resolve_record(model, "x", teacher="other", teacher_revision="v2")
    assert (explicit["teacher"], explicit["teacher_revision"], explicit["step"]) == ("other", "v2", 4)
    (tmp_path / "distillation.json").write_text(json.dumps({"teacher": "/t", "step": 6}))
    assert resolve_record(model, "x", peft=str(tmp_path))["step"] == 6
    assert resolve_record(object(), "distilgpt2")["teacher"] == "gpt2"
    assert resolve_record(object(), "gpt2") is None
