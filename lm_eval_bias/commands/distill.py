"""`lm-eval-bias distill`: train a student from a teacher by knowledge distillation.

    lm-eval-bias distill --teacher PATH_OR_ID --student half --output DIR --steps 200 --save-every 50

See lm_eval_bias/distillation/ and docs/distillation.md.
"""

from __future__ import annotations

from lm_eval_bias.distillation_record import RECORD_FILE


def run(args) -> int:
    from lm_eval_bias.distillation.trainer import STUDENT_INIT, DistillConfig, distill

    fields = set(DistillConfig.__dataclass_fields__)
    cfg = DistillConfig(**{k: v for k, v in vars(args).items() if k in fields})
    last = distill(cfg)
    checkpoints = sorted(last.parent.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    print(f"checkpoints ({RECORD_FILE} in each): " + ", ".join(p.name for p in checkpoints))
    base = last.parent / STUDENT_INIT
    model_args = f"pretrained={base},peft={last}" if cfg.lora else f"pretrained={last}"
    print(f"evaluate: lm_eval --model quantized_hf --model_args {model_args} --tasks crows_pairs_bias")
    return 0


def _optional_int(text: str) -> int | None:
    return None if text.lower() in ("none", "all") else int(text)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "distill",
        help="distill a student from a teacher (causal or masked LM)",
        description="Knowledge distillation: loss = alpha*T^2*KL(teacher_T || student_T) + (1-alpha)*cross-entropy. "
        "Checkpoints load with `lm_eval --model quantized_hf --model_args pretrained=DIR/checkpoint-N` "
        "and record their teacher.",
    )
    models = p.add_argument_group("models")
    models.add_argument("--teacher", required=True, help="teacher folder or Hub id")
    models.add_argument("--teacher-revision", help="teacher revision (branch, tag, commit)")
    models.add_argument(
        "--student",
        default="half",
        help="'half' (every other teacher layer, as DistilBERT), 'layers=N' (N evenly spaced "
        "layers), 'keep=0,5,...' (these layers), a config JSON of the teacher's architecture, "
        "or an existing checkpoint (folder or Hub id) with the teacher's vocabulary (default: half)",
    )
    models.add_argument("--student-revision", help="revision of an existing student checkpoint")
    models.add_argument(
        "--student-init",
        choices=("teacher", "random"),
        default="teacher",
        help="weights of a student built from a config: copied from the teacher (default) or random",
    )
    models.add_argument("--output", required=True, help="output folder (checkpoints, corpus, student-init)")

    data = p.add_argument_group("corpus")
    data.add_argument(
        "--corpus",
        nargs="+",
        default=[],
        help="text files or folders (one sample per line; .jsonl: the 'text' field) or one Hub dataset "
        "id; default: the teacher generates the corpus (seeded sampling, offline)",
    )
    data.add_argument("--corpus-name", help="Hub dataset configuration name")
    data.add_argument("--corpus-split", default="train", help="Hub dataset split (default: train)")
    data.add_argument("--text-column", default="text", help="Hub dataset text column (default: text)")
    data.add_argument(
        "--num-samples",
        type=_optional_int,
        default=256,
        help="training sequences, generated or taken from the corpus ('all': the whole corpus; default 256)",
    )
    data.add_argument("--heldout", type=int, default=32, help="further sequences held out for evaluation (default 32)")
    data.add_argument("--max-length", type=int, default=64, help="tokens per sequence, BOS included (default 64)")
    data.add_argument("--generate-batch-size", type=int, default=16, help="sequences generated at once (default 16)")
    data.add_argument("--mlm-probability", type=float, default=0.15, help="masked LMs: share of tokens masked")

    train = p.add_argument_group("training")
    train.add_argument("--temperature", type=float, default=2.0, help="softmax temperature T (default 2)")
    train.add_argument("--alpha", type=float, default=0.5, help="weight of the KL term, in [0, 1] (default 0.5)")
    train.add_argument("--steps", type=int, default=100, help="optimizer steps (default 100)")
    train.add_argument("--batch-size", type=int, default=8, help="sequences per step and device (default 8)")
    train.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation steps (default 1)")
    train.add_argument("--lr", type=float, default=5e-5, help="peak learning rate, linear decay (default 5e-5)")
    train.add_argument("--warmup-steps", type=int, default=0)
    train.add_argument("--weight-decay", type=float, default=0.0)
    train.add_argument("--seed", type=int, default=0, help="seed of sampling, data order, masking and init (default 0)")
    train.add_argument("--save-every", type=int, help="save a checkpoint every N steps (default: only at the end)")
    train.add_argument(
        "--eval-every", type=int, help="evaluate on the held-out set every N steps (default: at every save; 0: never)"
    )
    train.add_argument("--logging-steps", type=int, default=10)
    train.add_argument(
        "--freeze-embeddings",
        action="store_true",
        help="keep the student's token embeddings and LM head fixed at their initial values",
    )
    train.add_argument("--resume", action="store_true", help="continue the run in --output from its last checkpoint")
    train.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")

    lora = p.add_argument_group("LoRA")
    lora.add_argument("--lora", action="store_true", help="train a PEFT LoRA adapter instead of all weights")
    lora.add_argument("--lora-r", type=int, default=8)
    lora.add_argument("--lora-alpha", type=int, default=16)
    lora.add_argument("--lora-dropout", type=float, default=0.0)
    lora.add_argument("--lora-targets", default="all-linear", help="'all-linear' or comma-separated module names")
    p.set_defaults(run=run)
