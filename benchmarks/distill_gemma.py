"""Distil Gemma-3-270M into a half-depth student on its own samples; bias and perplexity over the budget.

    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 LM_EVAL_BIAS_DATA_DIR=/path/to/data GEMMA_DIR=/path/to/gemma-3-270m \
      python benchmarks/distill_gemma.py --output results/distill_gemma

--teacher defaults to $GEMMA_DIR, else the Hub id google/gemma-3-270m; --output to
results/distill_gemma under the folder the command runs in.

1. `lm-eval-bias distill --student half` (every other layer of the teacher) on a corpus the
   teacher samples itself, checkpoints every --save-every steps. It runs as a subprocess;
   running the script again resumes an interrupted distillation, or skips it when done.
2. For the teacher, the student before training (student-init, step 0) and every checkpoint:
     stereo %     CrowS-Pairs stereotype_score through the harness (quantized_hf, crows_pairs_bias),
                  on the first --limit pairs of each bias type (0: all 1,508), ± its standard error
     agree %      pairs on which the model prefers the same sentence as the teacher
     ppl          perplexity on the held-out teacher samples (OUTPUT/corpus/heldout.jsonl)
     KL           mean per-token KL(teacher ‖ model) on those samples, temperature 1
3. Prints a markdown table and writes OUTPUT/report.json.

The defaults (256 sequences of 32 tokens, 96 steps of 8, embeddings frozen) fit in about half
an hour of distillation on two shared CPU cores; evaluation takes a few minutes per model.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def distill_command(args) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "lm_eval_bias.cli",
        "distill",
        "--teacher",
        args.teacher,
        "--student",
        "half",
        "--output",
        str(args.output),
        "--steps",
        str(args.steps),
        "--save-every",
        str(args.save_every),
        "--num-samples",
        str(args.num_samples),
        "--heldout",
        str(args.heldout),
        "--max-length",
        str(args.max_length),
        "--batch-size",
        str(args.batch_size),
        "--lr",
        str(args.lr),
        "--warmup-steps",
        str(args.warmup_steps),
        "--temperature",
        str(args.temperature),
        "--alpha",
        str(args.alpha),
        "--seed",
        str(args.seed),
        "--generate-batch-size",
        "64",
        "--logging-steps",
        "8",
        "--freeze-embeddings",
    ]
    from lm_eval_bias.distillation.trainer import last_checkpoint

    return command + (["--resume"] if args.output.exists() and last_checkpoint(args.output) else [])


def run_distillation(args) -> float:
    from lm_eval_bias.distillation.trainer import last_checkpoint

    last = last_checkpoint(args.output) if args.output.exists() else None
    if last is not None and last.name == f"checkpoint-{args.steps}":
        print(f"distillation already done: {last}")
        return float("nan")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    start = time.perf_counter()
    subprocess.run(distill_command(args), check=True, env=env)
    return time.perf_counter() - start


def preferences(results) -> dict[tuple[str, int], bool]:
    return {
        (task, s["doc_id"]): s["sent_more_score"] > s["sent_less_score"]
        for task, samples in results["samples"].items()
        for s in samples
    }


def evaluate(name: str, path: str, teacher, args, task_manager, heldout) -> dict:
    import lm_eval

    from lm_eval_bias.distillation.trainer import evaluate_heldout
    from lm_eval_bias.model_wrappers.quantized_hf import QuantizedHFLM

    start = time.perf_counter()
    lm = QuantizedHFLM(pretrained=path, device="cpu", batch_size=args.eval_batch_size)
    reference = teacher.model if teacher is not None else lm.model
    held = evaluate_heldout(lm.model, reference, lm.tokenizer, heldout, masked=False, batch_size=args.eval_batch_size)
    results = lm_eval.simple_evaluate(
        model=lm,
        tasks=["crows_pairs_bias"],
        limit=args.limit or None,
        log_samples=True,
        bootstrap_iters=0,
        task_manager=task_manager,
    )
    group = results["results"]["crows_pairs_bias"]
    record = results["config"].get("distillation") or {}
    row = {
        "model": name,
        "path": path,
        "step": record.get("step"),
        "stereotype_score": group["stereotype_score,none"],
        "stereotype_score_stderr": group.get("stereotype_score_stderr,none"),
        "pairs": len(preferences(results)),
        "heldout_perplexity": held["perplexity"],
        "heldout_kl": held["kl"],
        "teacher": record.get("teacher"),
        "seconds": time.perf_counter() - start,
        "_preferences": preferences(results),
        "_lm": lm,
    }
    print(
        f"{name}: stereotype_score {row['stereotype_score']:.2f}, held-out ppl {held['perplexity']:.2f}, "
        f"KL {held['kl']:.4f} ({row['seconds']:.0f} s)",
        flush=True,
    )
    return row


def table(rows: list[dict], teacher_prefs: dict) -> str:
    lines = [
        "| model | step | stereo % (± se) | agree % | held-out ppl | KL(teacher‖model) | eval s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        agree = 100.0 * sum(row["_preferences"][k] == v for k, v in teacher_prefs.items()) / len(teacher_prefs)
        row["agreement_with_teacher"] = agree
        se = row["stereotype_score_stderr"]
        score = f"{row['stereotype_score']:.2f}" + (f" ± {se:.2f}" if isinstance(se, float) else "")
        lines.append(
            f"| {row['model']} | {row['step'] if row['step'] is not None else '-'} | {score} | {agree:.1f} | "
            f"{row['heldout_perplexity']:.2f} | {row['heldout_kl']:.4f} | {row['seconds']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--teacher",
        default=os.environ.get("GEMMA_DIR") or "google/gemma-3-270m",
        help="teacher model: a Hub id or a local folder (default: $GEMMA_DIR, else google/gemma-3-270m)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("results/distill_gemma"),
        help="output folder, relative to where the command runs (default: results/distill_gemma)",
    )
    parser.add_argument("--steps", type=int, default=96)
    parser.add_argument("--save-every", type=int, default=32)
    parser.add_argument("--num-samples", type=int, default=256)
    parser.add_argument("--heldout", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--warmup-steps", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=30, help="CrowS-Pairs pairs per bias type (0: all)")
    parser.add_argument("--eval-batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on shared cores)")
    args = parser.parse_args(argv)

    distill_seconds = run_distillation(args)

    import torch
    from lm_eval.tasks import TaskManager

    from lm_eval_bias.distillation.corpus import load_jsonl
    from lm_eval_bias.distillation.trainer import STUDENT_INIT

    torch.set_num_threads(args.threads)
    heldout = load_jsonl(args.output / "corpus" / "heldout.jsonl")
    task_manager = TaskManager()
    checkpoints = sorted(args.output.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    teacher = evaluate("teacher", args.teacher, None, args, task_manager, heldout)
    rows = [teacher]
    for name, path in [("student-init", args.output / STUDENT_INIT)] + [(p.name, p) for p in checkpoints]:
        row = evaluate(name, str(path), teacher["_lm"], args, task_manager, heldout)
        del row["_lm"]
        gc.collect()
        rows.append(row)
    report = table(rows, teacher["_preferences"])
    print(f"\ndistillation: {distill_seconds:.0f} s\n\n{report}")
    (args.output / "report.md").write_text(report + "\n", encoding="utf-8")
    teacher.pop("_lm")
    keep = [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows]
    (args.output / "report.json").write_text(
        json.dumps({"distill_seconds": distill_seconds, "settings": vars(args), "rows": keep}, indent=1, default=str),
        encoding="utf-8",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
