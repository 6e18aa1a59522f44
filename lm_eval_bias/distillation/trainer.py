"""Distilling a student from a teacher with transformers' Trainer.

`DistillationTrainer` is a Trainer whose `compute_loss` is the distillation loss (loss.py);
everything else — batching, gradient accumulation, the progress bar, checkpoints every
`save_every` steps, resuming from the last one, evaluation — is the Trainer's own.
`distill(DistillConfig)` puts the pieces together:

    OUTPUT/corpus/          train.jsonl, heldout.jsonl, source.json (reused on --resume)
    OUTPUT/student-init/    the student before training, when it was built from the teacher (LoRA: the base)
    OUTPUT/checkpoint-N/    every save_every steps and at the end: an ordinary HF folder (weights or
                            LoRA adapter, tokenizer, config), plus the Trainer's optimizer/RNG state
                            and distillation.json, which records the teacher (distillation_record.py)
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import transformers

from lm_eval_bias.distillation.corpus import TokenDataset, collator, prepare_corpus
from lm_eval_bias.distillation.loss import distillation_loss
from lm_eval_bias.distillation.student import LoadedModel, build_student, load_model, resolved_id
from lm_eval_bias.distillation_record import CONFIG_KEY, RECORD_FILE

STUDENT_INIT = "student-init"


@dataclass
class DistillConfig:
    teacher: str
    student: str = "half"
    output: str = "distilled"
    teacher_revision: str | None = None
    student_revision: str | None = None
    student_init: str = "teacher"  # teacher | random: how a student built from a config is initialised
    corpus: list[str] = field(default_factory=list)
    corpus_name: str | None = None
    corpus_split: str = "train"
    text_column: str = "text"
    num_samples: int | None = 256  # training sequences (None: the whole corpus)
    heldout: int = 32
    max_length: int = 64
    generate_batch_size: int = 16
    temperature: float = 2.0
    alpha: float = 0.5
    steps: int = 100
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 5e-5
    warmup_steps: int = 0
    weight_decay: float = 0.0
    seed: int = 0
    save_every: int | None = None  # None: only at the end
    eval_every: int | None = None  # None: at every save when there is a held-out set; 0: never
    logging_steps: int = 10
    mlm_probability: float = 0.15
    freeze_embeddings: bool = False
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: str = "all-linear"
    resume: bool = False
    progress: bool = True


class DistillationTrainer(transformers.Trainer):
    """A Trainer that minimises α·T²·KL(teacher_T ‖ student_T) + (1−α)·CE; logs kl and ce beside the loss."""

    loss_is_scaled_for_ga = False  # compute_loss returns a per-batch mean

    def __init__(self, *args, teacher: torch.nn.Module, temperature: float, alpha: float, masked: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.teacher = teacher.to(self.args.device).eval().requires_grad_(False)
        self.temperature, self.alpha, self.masked = temperature, alpha, masked
        self._sums = {"train": [0.0, 0.0, 0], "eval": [0.0, 0.0, 0]}  # kl·n, ce·n, n

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs["labels"]
        features = {k: v for k, v in inputs.items() if k != "labels"}
        if not self.masked:
            features["use_cache"] = False
        outputs = model(**features)
        with torch.no_grad():
            teacher_logits = self.teacher(**features).logits
        result = distillation_loss(
            outputs.logits,
            teacher_logits,
            labels,
            temperature=self.temperature,
            alpha=self.alpha,
            causal=not self.masked,
        )
        sums = self._sums["train" if model.training else "eval"]
        sums[0] += float(result.kl) * result.tokens
        sums[1] += float(result.ce) * result.tokens
        sums[2] += result.tokens
        return (result.loss, outputs) if return_outputs else result.loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        for mode, prefix in (("train", ""), ("eval", "eval_")):
            kl, ce, n = self._sums[mode]
            if f"{prefix}loss" in logs and n:
                logs[f"{prefix}kl"], logs[f"{prefix}ce"] = kl / n, ce / n
                logs[f"{prefix}perplexity"] = math.exp(min(ce / n, 50.0))
                self._sums[mode] = [0.0, 0.0, 0]
        super().log(logs, start_time)


class RecordCallback(transformers.TrainerCallback):
    """Keeps the record's step current in the saved config, and writes distillation.json into each checkpoint."""

    def __init__(self, record: dict, config) -> None:
        self.record, self.config = record, config

    def on_step_end(self, args, state, control, **kwargs):
        self.record["step"] = state.global_step
        setattr(self.config, CONFIG_KEY, dict(self.record))

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.is_dir():
            (folder / RECORD_FILE).write_text(json.dumps({**self.record, "step": state.global_step}, indent=1))


def last_checkpoint(output: Path) -> Path | None:
    """The newest complete checkpoint (one with trainer_state.json; a save cut short is skipped)."""
    found = [
        p
        for p in output.glob("checkpoint-*")
        if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").exists()
    ]
    return max(found, key=lambda p: int(p.name.split("-")[-1]), default=None)


def training_arguments(cfg: DistillConfig, *, has_heldout: bool) -> transformers.TrainingArguments:
    save_every = cfg.save_every or cfg.steps
    eval_every = save_every if cfg.eval_every is None else cfg.eval_every
    evaluate = has_heldout and eval_every > 0
    return transformers.TrainingArguments(
        output_dir=cfg.output,
        max_steps=cfg.steps,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr,
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        seed=cfg.seed,
        save_strategy="steps",
        save_steps=save_every,
        save_total_limit=None,
        eval_strategy="steps" if evaluate else "no",
        eval_steps=eval_every if evaluate else None,
        prediction_loss_only=True,
        logging_steps=cfg.logging_steps,
        report_to="none",
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        remove_unused_columns=False,
        disable_tqdm=not cfg.progress,
    )


def the_record(cfg: DistillConfig, teacher: LoadedModel, student: LoadedModel, source: str) -> dict:
    return {
        "teacher": resolved_id(cfg.teacher),
        "teacher_revision": cfg.teacher_revision,
        "student_init": student.description,
        "temperature": cfg.temperature,
        "alpha": cfg.alpha,
        "corpus": source,
        "lora": cfg.lora,
        "seed": cfg.seed,
        "step": 0,
    }


def prepare_student(cfg: DistillConfig, teacher: LoadedModel, output: Path) -> LoadedModel:
    """The student as training starts from it (on resume: the same one, reloaded)."""
    init = output / STUDENT_INIT
    if cfg.resume and (init / "config.json").exists():
        student = load_model(str(init))
        student.description = getattr(student.model.config, CONFIG_KEY, {}).get("student_init", str(init))
        student.built = True
        return student
    return build_student(cfg.student, teacher, init=cfg.student_init, revision=cfg.student_revision)


def apply_lora(cfg: DistillConfig, model, masked: bool):
    import peft

    targets = cfg.lora_targets if cfg.lora_targets == "all-linear" else [t.strip() for t in cfg.lora_targets.split(",")]
    config = peft.LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        task_type=None if masked else "CAUSAL_LM",
    )
    return peft.get_peft_model(model, config)


def distill(cfg: DistillConfig, callbacks: list | None = None) -> Path:
    """Run a distillation; returns the last checkpoint's folder."""
    output = Path(cfg.output)
    previous = last_checkpoint(output) if output.exists() else None
    if previous is not None and not cfg.resume:
        raise ValueError(
            f"{output} already holds checkpoints (up to {previous.name}); pass --resume to continue "
            "that run, or choose another --output"
        )
    teacher = load_model(cfg.teacher, cfg.teacher_revision)
    student = prepare_student(cfg, teacher, output)
    corpus = prepare_corpus(
        output / "corpus",
        teacher.model,
        teacher.tokenizer,
        masked=teacher.masked,
        corpus=cfg.corpus,
        num_samples=cfg.num_samples,
        heldout=cfg.heldout,
        max_length=cfg.max_length,
        seed=cfg.seed,
        generate_batch_size=cfg.generate_batch_size,
        hub_name=cfg.corpus_name,
        hub_split=cfg.corpus_split,
        text_column=cfg.text_column,
        progress=cfg.progress,
    )
    record = the_record(cfg, teacher, student, corpus.source)
    model = student.model
    setattr(model.config, CONFIG_KEY, dict(record))
    if student.built:  # saved once; LoRA adapters name it as their base
        init = output / STUDENT_INIT
        if not cfg.resume or not (init / "config.json").exists():
            model.save_pretrained(init)
            student.tokenizer.save_pretrained(init)
        model.config._name_or_path = model.name_or_path = str(init.resolve())
    if cfg.freeze_embeddings:
        for module in {model.get_input_embeddings(), model.get_output_embeddings()}:
            module.weight.requires_grad_(False)
    if cfg.lora:
        model = apply_lora(cfg, model, student.masked)
    (output / "distill_args.json").write_text(json.dumps(asdict(cfg), indent=1))
    trainer = DistillationTrainer(
        model=model,
        args=training_arguments(cfg, has_heldout=bool(corpus.heldout)),
        train_dataset=TokenDataset(corpus.train),
        eval_dataset=TokenDataset(corpus.heldout) if corpus.heldout else None,
        data_collator=collator(student.tokenizer, masked=student.masked, mlm_probability=cfg.mlm_probability),
        processing_class=student.tokenizer,
        teacher=teacher.model,
        temperature=cfg.temperature,
        alpha=cfg.alpha,
        masked=student.masked,
        callbacks=[RecordCallback(record, student.model.config), *(callbacks or [])],
    )
    trainer.train(resume_from_checkpoint=str(previous) if previous is not None else None)
    return last_checkpoint(output)


def evaluate_heldout(
    student,
    teacher,
    tokenizer,
    sequences,
    *,
    masked: bool,
    temperature: float = 1.0,
    batch_size: int = 8,
    seed: int = 0,
) -> dict[str, float]:
    """kl (teacher ‖ student at this temperature), ce and perplexity of the student on held-out sequences.

    Pass the teacher as student to get the teacher's own perplexity (kl 0). Masked LMs are
    scored at positions masked by the training collator, seeded.
    """
    with tempfile.TemporaryDirectory() as scratch:
        args = transformers.TrainingArguments(
            output_dir=scratch,
            per_device_eval_batch_size=batch_size,
            prediction_loss_only=True,
            report_to="none",
            use_cpu=not torch.cuda.is_available(),
            seed=seed,
            disable_tqdm=True,
            remove_unused_columns=False,
        )
        trainer = DistillationTrainer(
            model=student,
            args=args,
            data_collator=collator(tokenizer, masked=masked),
            teacher=teacher,
            temperature=temperature,
            alpha=1.0,
            masked=masked,
        )
        transformers.set_seed(seed)
        metrics = trainer.evaluate(TokenDataset(sequences))
    return {k[len("eval_") :]: metrics[k] for k in ("eval_kl", "eval_ce", "eval_perplexity")}
