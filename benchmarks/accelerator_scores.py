"""Causal CrowS-Pairs scores on an accelerator: against an fp64 reference, the CPU, and other batch sizes.

    LM_EVAL_BIAS_DATA_DIR=/path/to/data python benchmarks/accelerator_scores.py --model PATH [--device cuda]
        [--limit 200] [--batch-sizes 8 32]

Scores the first --limit pairs' sentences (prefix token, then the sentence: what crows_pairs_bias
asks of a causal model) through `score_continuations` on --device at each batch size and on the
CPU (where --device is not the CPU), and through a straightforward reference: the model in fp64 on
--device, one sentence per forward, a full log-softmax. Prints the largest per-sentence and per-token differences, the
scoring times, and whether TF32 was allowed for fp32 products (PyTorch's default: no).
"""

from __future__ import annotations

import argparse
import copy
import time

import pandas as pd
import torch
from crows_pairs_speed import _prefixed, sentence_pairs  # the speed benchmark's sentences and prefix token
from transformers import AutoModelForCausalLM, AutoTokenizer

from lm_eval_bias.scoring.causal import continuation_token_logprobs


def requests(tokenizer, limit: int) -> list[tuple[list[int], list[int]]]:
    """(prefix token, sentence ids) for both sentences of the first `limit` pairs."""
    prefixed = [_prefixed(tokenizer, sentence) for pair in sentence_pairs()[:limit] for sentence in pair]
    return [(ids[:1], ids[1:]) for ids in prefixed]


def ours(model, tokenizer, reqs, batch_size: int) -> tuple[list[list[float]], float]:
    """Per-token log-probabilities through the package's scorer, and the seconds it took."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    start = time.perf_counter()
    scored = continuation_token_logprobs(model, reqs, batch_size=batch_size, pad_token_id=pad, share_prefixes=True)
    return [list(tokens.logprobs) for tokens in scored], time.perf_counter() - start


def reference(model, reqs, device) -> list[list[float]]:
    """fp64, one sentence per forward, the model's own logits through a full log-softmax."""
    out = []
    with torch.inference_mode():
        for context, continuation in reqs:
            ids = torch.tensor([[*context, *continuation]], device=device)
            logprobs = torch.log_softmax(model(ids).logits[0, len(context) - 1 : -1].double(), dim=-1)
            out.append(logprobs.gather(1, ids[0, len(context) :, None]).squeeze(1).tolist())
    return out


def largest_differences(a: list[list[float]], b: list[list[float]]) -> tuple[float, float]:
    """(largest per-sentence difference, largest per-token difference)."""
    sentence = max(abs(sum(x) - sum(y)) for x, y in zip(a, b))
    token = max(abs(p - q) for x, y in zip(a, b) for p, q in zip(x, y))
    return sentence, token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="causal LM folder")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--limit", type=int, default=200, help="pairs scored (default 200)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32])
    args = parser.parse_args()
    if args.limit < 1 or min(args.batch_sizes) < 1:
        parser.error("--limit and --batch-sizes must be positive integers")
    try:
        torch.empty(0, device=args.device)
    except (RuntimeError, AssertionError) as error:
        parser.error(
            f"--device {args.device!r} is not usable here ({error}); e.g. --device cpu, or cuda on a GPU machine"
        )
    torch.set_grad_enabled(False)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    reqs = requests(tokenizer, args.limit)
    cpu_model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    device_model = copy.deepcopy(cpu_model).to(args.device)
    reference_scores = reference(copy.deepcopy(cpu_model).double().to(args.device), reqs, args.device)
    runs = {f"{args.device} batch {size}": ours(device_model, tokenizer, reqs, size) for size in args.batch_sizes}
    runs[f"{args.device} batch {args.batch_sizes[0]}, again"] = ours(device_model, tokenizer, reqs, args.batch_sizes[0])
    if torch.device(args.device).type != "cpu":
        runs[f"cpu batch {args.batch_sizes[-1]}"] = ours(cpu_model, tokenizer, reqs, args.batch_sizes[-1])
    tokens = sum(len(c) for _, c in reqs)
    print(
        f"{len(reqs)} sentences, {tokens} scored tokens; TF32 for fp32 products allowed: "
        f"{torch.backends.cuda.matmul.allow_tf32}"
    )
    first_name, (first, _) = next(iter(runs.items()))
    rows = []
    for name, (scores, seconds) in runs.items():
        ref_sentence, ref_token = largest_differences(scores, reference_scores)
        first_sentence, _ = largest_differences(scores, first)
        rows.append(
            {
                "run": name,
                "seconds": round(seconds, 2),
                "vs fp64 (sentence)": f"{ref_sentence:.1e}",
                "vs fp64 (token)": f"{ref_token:.1e}",
                f"vs {first_name} (sentence)": f"{first_sentence:.1e}",
            }
        )
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
