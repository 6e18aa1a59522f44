"""Distillation runs on tiny models: students, checkpoints, LoRA, resume, and loading them in the harness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers

from fixtures.harness import evaluate, metric
from fixtures.reference_scoring import reference_causal_logprob
from lm_eval_bias.cli import main
from lm_eval_bias.distillation.corpus import load_jsonl
from lm_eval_bias.distillation.student import VocabularyMismatchError, build_student, load_model
from lm_eval_bias.distillation.trainer import DistillConfig, distill, evaluate_heldout, last_checkpoint

TASK = "crows_pairs_bias_gender"
SMALL = {"num_samples": 24, "heldout": 8, "max_length": 16, "batch_size": 4, "logging_steps": 1, "progress": False}


def _cfg(teacher: str, output: Path, **overrides) -> DistillConfig:
    return DistillConfig(teacher=teacher, output=str(output), **{**SMALL, **overrides})


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run 10-100x faster on one thread than on two contended ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def task_manager():
    from lm_eval.tasks import TaskManager

    return TaskManager()  # indexing the harness's tasks once saves ~10 s per evaluation


@pytest.fixture(scope="module")
def cli_run(tiny_gpt_neox_dir, tmp_path_factory):
    """A GPT-NeoX teacher -> one-layer student, 4 steps, a checkpoint every 2, through the CLI."""
    output = tmp_path_factory.mktemp("distill") / "run"
    status = main(
        [
            "distill",
            "--teacher",
            tiny_gpt_neox_dir,
            "--student",
            "half",
            "--output",
            str(output),
            "--steps",
            "4",
            "--save-every",
            "2",
            "--num-samples",
            "24",
            "--heldout",
            "8",
            "--max-length",
            "16",
            "--batch-size",
            "4",
            "--lr",
            "1e-3",
            "--logging-steps",
            "1",
            "--no-progress",
        ]
    )
    assert status == 0
    return output


def test_students_take_the_teachers_layers(tiny_gpt_neox_dir, tiny_gpt2_dir, tiny_bert_dir):
    for folder, stack in (
        (tiny_gpt_neox_dir, "gpt_neox.layers"),
        (tiny_gpt2_dir, "transformer.h"),
        (tiny_bert_dir, "bert.encoder.layer"),
    ):
        teacher = load_model(folder)
        assert build_student("half", teacher).model.config.num_hidden_layers == 1  # layer 0 of 2
        student = build_student("keep=1", teacher)  # the teacher's second layer becomes the student's first
        assert student.built and student.description == "teacher layers [1] of the teacher"
        theirs, ours = teacher.model.state_dict(), student.model.state_dict()
        for key, value in ours.items():
            assert torch.equal(value, theirs[key.replace(f"{stack}.0.", f"{stack}.1.")]), key
        assert len(theirs) > len(ours)


def test_vocabularies_and_kinds_must_match(tiny_gpt_neox_dir, tiny_gpt2_dir, tiny_bert_dir):
    teacher = load_model(tiny_gpt_neox_dir)
    with pytest.raises(VocabularyMismatchError, match="vocabularies must match"):
        build_student(tiny_gpt2_dir, teacher)  # GPT-2's tokenizer lacks NeoX's pad token
    with pytest.raises(ValueError, match="causal LM and the student a masked LM"):
        build_student(tiny_bert_dir, teacher)


def test_checkpoints_every_n_steps_record_their_teacher(cli_run, tiny_gpt_neox_dir):
    assert sorted(p.name for p in cli_run.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert len(load_jsonl(cli_run / "corpus" / "train.jsonl")) == 24
    assert len(load_jsonl(cli_run / "corpus" / "heldout.jsonl")) == 8
    for step in (2, 4):
        folder = cli_run / f"checkpoint-{step}"
        record = json.loads((folder / "config.json").read_text())["distillation"]
        assert record == json.loads((folder / "distillation.json").read_text())
        assert (record["teacher"], record["step"], record["temperature"], record["alpha"]) == (
            str(Path(tiny_gpt_neox_dir).resolve()),
            step,
            2.0,
            0.5,
        )
        assert record["student_init"] == "teacher layers [0] of the teacher"
    assert not torch.equal(
        _weights(cli_run / "checkpoint-2")["gpt_neox.layers.0.mlp.dense_h_to_4h.weight"],
        _weights(cli_run / "checkpoint-4")["gpt_neox.layers.0.mlp.dense_h_to_4h.weight"],
    )
    log = json.loads((cli_run / "checkpoint-4" / "trainer_state.json").read_text())["log_history"]
    assert any("eval_kl" in entry for entry in log) and any("kl" in entry and "ce" in entry for entry in log)


def _reference_pair_scores(checkpoint, tokenizer_dir, samples) -> list[tuple[float, float]]:
    """Each logged pair scored again from the checkpoint's files: torch's own quantize_dynamic, one
    sentence per forward, fp64 log-softmax, mean log-probability per token (the task's default)."""
    from torch.ao.quantization import quantize_dynamic

    model = quantize_dynamic(
        transformers.AutoModelForCausalLM.from_pretrained(checkpoint).eval(), {torch.nn.Linear}, dtype=torch.qint8
    )
    tokenizer = transformers.AutoTokenizer.from_pretrained(tokenizer_dir)
    pairs = []
    for sample in samples:
        pair = []
        for sentence in (sample["doc"]["sent_more"], sample["doc"]["sent_less"]):
            ids = tokenizer.encode(sentence, add_special_tokens=False)
            total, _ = reference_causal_logprob(model, [tokenizer.bos_token_id], ids, feed_last=False)
            pair.append(total / len(ids))
        pairs.append(tuple(pair))
    return pairs


def test_checkpoints_load_in_the_harness(
    cli_run, tiny_gpt_neox_dir, crows_pairs_fixture_csv, monkeypatch, task_manager
):
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", crows_pairs_fixture_csv)
    results = evaluate(
        "quantized_hf",
        f"pretrained={cli_run / 'checkpoint-2'},quantization=dynamic_int8",
        [TASK],
        task_manager=task_manager,
    )
    expected = _reference_pair_scores(cli_run / "checkpoint-2", tiny_gpt_neox_dir, results["samples"][TASK])
    got = [(s["sent_more_score"], s["sent_less_score"]) for s in results["samples"][TASK]]
    assert got == [pytest.approx(pair, abs=1e-5) for pair in expected]
    prefers = [more > less for more, less in expected]
    assert metric(results, TASK, "stereotype_score") == pytest.approx(100.0 * sum(prefers) / len(prefers), abs=1e-9)
    record = results["config"]["distillation"]
    assert record["teacher"] == str(Path(tiny_gpt_neox_dir).resolve()) and record["step"] == 2
    assert results["config"]["quantization"]["method"] == "dynamic_int8"
    teacher = evaluate("quantized_hf", f"pretrained={tiny_gpt_neox_dir}", [TASK], task_manager=task_manager)
    assert "distillation" not in teacher["config"]


def test_a_generated_corpus_needs_a_size(tiny_gpt_neox_dir, tmp_path):
    with pytest.raises(ValueError, match="needs a size"):
        distill(_cfg(tiny_gpt_neox_dir, tmp_path / "run", num_samples=None, steps=1))


def test_existing_checkpoints_need_resume(cli_run, tiny_gpt_neox_dir, capsys):
    status = main(["distill", "--teacher", tiny_gpt_neox_dir, "--output", str(cli_run), "--steps", "4"])
    assert status == 2 and "--resume" in capsys.readouterr().err


def test_distillation_lowers_heldout_kl(tiny_gpt_neox_dir, tmp_path):
    sharp = load_model(tiny_gpt_neox_dir)  # a random teacher with confident predictions, so that there is much to learn
    with torch.no_grad():
        sharp.model.get_output_embeddings().weight.mul_(20.0)
    sharp.model.save_pretrained(tmp_path / "teacher")
    sharp.tokenizer.save_pretrained(tmp_path / "teacher")
    cfg = _cfg(
        str(tmp_path / "teacher"),
        tmp_path / "run",
        steps=40,
        lr=3e-3,
        num_samples=64,
        max_length=24,
        alpha=1.0,
        temperature=1.0,
        eval_every=0,
        save_every=40,
    )
    last = distill(cfg)
    heldout = load_jsonl(tmp_path / "run" / "corpus" / "heldout.jsonl")

    def kl(folder):
        return evaluate_heldout(load_model(str(folder)).model, sharp.model, sharp.tokenizer, heldout, masked=False)[
            "kl"
        ]

    before, after = kl(tmp_path / "run" / "student-init"), kl(last)
    print(f"held-out KL(teacher || student): {before:.4f} before, {after:.4f} after")
    assert after < 0.7 * before, (before, after)
    itself = evaluate_heldout(sharp.model, sharp.model, sharp.tokenizer, heldout, masked=False)
    assert itself["kl"] == pytest.approx(0.0, abs=1e-6)


def test_resume_continues_from_the_last_checkpoint(tiny_gpt2_dir, tmp_path):
    class Crash(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise KeyboardInterrupt  # after checkpoint-2 was saved, before checkpoint-4

    settings = {"steps": 4, "save_every": 2, "lr": 1e-3, "eval_every": 0}
    reference = distill(_cfg(tiny_gpt2_dir, tmp_path / "whole", **settings))
    with pytest.raises(KeyboardInterrupt):
        distill(_cfg(tiny_gpt2_dir, tmp_path / "cut", **settings), callbacks=[Crash()])
    assert last_checkpoint(tmp_path / "cut").name == "checkpoint-2"
    resumed = distill(_cfg(tiny_gpt2_dir, tmp_path / "cut", resume=True, **settings))
    assert resumed.name == "checkpoint-4"
    state = json.loads((resumed / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    ours, theirs = _weights(resumed), _weights(reference)
    for key in theirs:
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-4, atol=1e-6)


def test_lora_saves_an_adapter_that_peft_loads(
    tiny_gpt_neox_dir, tmp_path, crows_pairs_fixture_csv, monkeypatch, task_manager
):
    last = distill(_cfg(tiny_gpt_neox_dir, tmp_path / "lora", steps=2, lora=True, lr=1e-2, eval_every=0))
    assert (last / "adapter_model.safetensors").exists() and not (last / "model.safetensors").exists()
    assert json.loads((last / "distillation.json").read_text())["lora"] is True
    base = tmp_path / "lora" / "student-init"
    assert json.loads((last / "adapter_config.json").read_text())["base_model_name_or_path"] == str(base.resolve())
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", crows_pairs_fixture_csv)
    adapted = evaluate("quantized_hf", f"pretrained={base},peft={last}", [TASK], task_manager=task_manager)
    plain = evaluate("quantized_hf", f"pretrained={base}", [TASK], task_manager=task_manager)
    assert adapted["config"]["distillation"]["step"] == 2 and plain["config"]["distillation"]["step"] == 0
    scores = [[s["sent_more_score"] for s in r["samples"][TASK]] for r in (adapted, plain)]
    assert scores[0] != scores[1]  # the adapter was applied


def test_masked_lm_distillation_on_a_text_corpus(tiny_bert_dir, tmp_path):
    from conftest import CORPUS

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(CORPUS) + "\n")
    last = distill(
        _cfg(tiny_bert_dir, tmp_path / "bert", corpus=[str(corpus)], steps=2, num_samples=None, eval_every=0)
    )
    model = transformers.AutoModelForMaskedLM.from_pretrained(last)
    assert model.config.num_hidden_layers == 1 and model.config.distillation["step"] == 2
    with pytest.raises(ValueError, match="cannot write its own corpus"):
        distill(_cfg(tiny_bert_dir, tmp_path / "nocorpus", steps=1))


# ------------------------------------------------------------ distilled_hf


def test_distilled_hf_records_the_teacher(
    cli_run, tiny_gpt_neox_dir, tiny_gpt2_dir, tmp_path, crows_pairs_fixture_csv, monkeypatch, task_manager
):
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", crows_pairs_fixture_csv)

    def record(model_args: str) -> dict:
        results = evaluate("distilled_hf", model_args, [TASK], task_manager=task_manager, limit=2)
        assert results["config"]["model"] == "distilled_hf"
        return results["config"]["distillation"]

    ours = record(f"pretrained={cli_run / 'checkpoint-4'},quantization=dynamic_int8")
    teacher = str(Path(tiny_gpt_neox_dir).resolve())
    assert (ours["teacher"], ours["teacher_source"], ours["step"]) == (teacher, "checkpoint", 4)
    explicit = record(f"pretrained={tiny_gpt_neox_dir},teacher=org/teacher,teacher_revision=v1")
    assert explicit == {"teacher": "org/teacher", "teacher_revision": "v1", "teacher_source": "model_args"}
    (tmp_path / "distilgpt2").symlink_to(tiny_gpt2_dir)
    assert record(f"pretrained={tmp_path / 'distilgpt2'}")["teacher"] == "gpt2"
    with pytest.raises(ValueError, match="no teacher known"):
        record(f"pretrained={tiny_gpt_neox_dir}")
