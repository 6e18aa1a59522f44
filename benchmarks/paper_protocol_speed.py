"""What the paper protocol costs against the default one: crows_pairs_bias through lm-eval, same model.

    LM_EVAL_BIAS_DATA_DIR=../shared/data python benchmarks/paper_protocol_speed.py [--model DIR] [--limit N]

The model defaults to $GEMMA_DIR, else ``google/gemma-3-270m``; batch size 32; the whole
CrowS-Pairs file unless ``--limit`` (pairs per bias type). The model is loaded once
(``quantized_hf``); each protocol is timed ``--repeats`` times, alternating, and the fastest run
of each is reported, with the ratio paper / default. Under ``paper`` a causal LM scores each
sentence without its prefix token (one token shorter) plus one forward pass over the prefix
token for the whole run, so the ratio should stay close to 1.
"""

from __future__ import annotations

import argparse
import os
import time


def timed_run(lm, protocol: str, limit: int | None) -> float:
    import lm_eval
    from lm_eval.tasks import TaskManager

    from lm_eval_bias.catalog import with_our_tasks

    manager = TaskManager(include_defaults=False, include_path=with_our_tasks(), metadata={"protocol": protocol})
    start = time.perf_counter()
    lm_eval.simple_evaluate(model=lm, tasks=["crows_pairs_bias"], task_manager=manager, limit=limit, bootstrap_iters=0)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.environ.get("GEMMA_DIR") or "google/gemma-3-270m")
    parser.add_argument("--quantization", default="none")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cuda" if _cuda() else "cpu")
    parser.add_argument("--limit", type=int, default=None, help="pairs per bias type (default: all)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from lm_eval_bias.model_wrappers.quantized_hf import QuantizedHFLM

    lm = QuantizedHFLM(
        pretrained=args.model, quantization=args.quantization, batch_size=args.batch_size, device=args.device
    )
    timed_run(lm, "default", 1)  # warm-up: kernels, tokenizer, data cache (one pair per bias type)
    seconds = {"default": [], "paper": []}
    for _ in range(args.repeats):
        for protocol in seconds:
            seconds[protocol].append(timed_run(lm, protocol, args.limit))
    best = {protocol: min(values) for protocol, values in seconds.items()}
    print(
        f"model {args.model}  quantization {args.quantization}  device {args.device}  batch {args.batch_size}  "
        f"pairs per bias type {args.limit or 'all'}  repeats {args.repeats}"
    )
    for protocol, value in best.items():
        print(f"  {protocol:<8} {value:8.2f} s  (runs: {', '.join(f'{v:.2f}' for v in seconds[protocol])})")
    print(f"  paper / default = {best['paper'] / best['default']:.3f}")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
