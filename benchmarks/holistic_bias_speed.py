"""HolisticBias throughput: our batched scorer against a one-sentence-per-forward loop.

    LM_EVAL_BIAS_DATA_DIR=/path/to/data python benchmarks/holistic_bias_speed.py \\
        [--model DIR] [--limit 2000] [--loop-limit 200] [--set small] [--batch-size 32]

`ours` is what a holistic_bias subtask asks of ``quantized_hf`` (quantization=none): one
``loglikelihood`` request ``("", sentence)`` per sentence, answered by the batched causal scorer
(``lm_eval_bias.scoring.causal``: length-sorted batches, the LM head only at scored positions) or,
for a masked LM, its pseudo-log-likelihood. `loop` scores sentences one per forward pass with the
plain transformers model (the whole sentence after the prefix token, full log-softmax). Both score
the same sentences: --limit of them, spread evenly over the set (every k-th, so every axis and
template length is represented; they share fewer prefixes than a whole run's, so ours' rate is a
lower bound) or with --first the set's first --limit (one axis' run, its sharing), the loop the
first --loop-limit of those. The largest difference
between the two sentences' log-likelihoods is printed as a check, with the 1-minute load average
before and after each timing (os.getloadavg): on a shared machine the figures are only as quiet as
that load. The last line estimates the whole set's time at ours' rate. --no-split scores whole
sentences without running the shared prefixes of those that begin alike once (``shared_prefix``): an A/B.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from lm_eval_bias.data.holistic_bias import SETS, load_lists, sentences


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def spread(texts: list[str], limit: int | None) -> list[str]:
    """``limit`` sentences taken at an even stride over ``texts`` (all of them without a limit)."""
    if not limit or limit >= len(texts):
        return texts
    step = len(texts) / limit
    return [texts[int(i * step)] for i in range(limit)]


def run_ours(model_dir: str, texts: list[str], batch_size: int, device: str) -> tuple[float, list[float]]:
    from lm_eval.api.instance import Instance

    from lm_eval_bias.model_wrappers.quantized_hf import QuantizedHFLM

    lm = QuantizedHFLM(pretrained=model_dir, quantization="none", device=device, batch_size=batch_size)
    requests = [
        Instance("loglikelihood", doc={}, arguments=("", text), idx=0, metadata=("holistic_bias_speed", i, 1))
        for i, text in enumerate(texts)
    ]
    start = time.perf_counter()
    responses = lm.loglikelihood(requests, disable_tqdm=True)
    return time.perf_counter() - start, [float(r[0]) for r in responses]


@torch.no_grad()
def run_loop(model_dir: str, texts: list[str], device: str) -> tuple[float, list[float]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device).eval()
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    start = time.perf_counter()
    scores = []
    for text in texts:
        ids = tokenizer.encode(text, add_special_tokens=False)
        ids = ids[1:] if ids and ids[0] == prefix else ids
        logits = model(input_ids=torch.tensor([[prefix, *ids]], device=device)).logits[0, :-1].double()
        scores.append(float(torch.log_softmax(logits, -1).gather(1, torch.tensor(ids, device=device)[:, None]).sum()))
    return time.perf_counter() - start, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="/work/models/gemma3-270m", help="a causal LM folder")
    parser.add_argument("--limit", type=int, default=2000, help="sentences scored by ours (0: the whole set)")
    parser.add_argument("--loop-limit", type=int, default=200, help="of those, how many the loop scores")
    parser.add_argument("--set", default="small", choices=SETS, help="the sentence set (holistic_bias_set)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--first", action="store_true", help="the set's first --limit sentences, not a spread")
    parser.add_argument(
        "--no-split", action="store_true", help="score whole sentences whole, without shared_prefix (an A/B)"
    )
    args = parser.parse_args()
    if args.no_split:
        import lm_eval_bias.scoring.causal as causal

        causal.plan_split = lambda model, requests, max_length: None

    every = [row["text"] for row in sentences(load_lists(), args.set)]
    texts = every[: args.limit or None] if args.first else spread(every, args.limit)
    print(
        f"model {args.model}; {args.set} set: {len(every)} sentences; timing {len(texts)}; torch threads "
        f"{torch.get_num_threads()}, {os.cpu_count()} CPUs"
    )

    before = load()
    seconds, ours = run_ours(args.model, texts, args.batch_size, args.device)
    print(
        f"ours: {len(texts)} sentences in {seconds:.1f} s = {len(texts) / seconds:.1f} sentences/s "
        f"(load {before} -> {load()})"
    )
    rate = len(texts) / seconds

    looped = texts[: args.loop_limit]
    before = load()
    loop_seconds, reference = run_loop(args.model, looped, args.device)
    loop_rate = len(looped) / loop_seconds
    print(
        f"loop: {len(looped)} sentences in {loop_seconds:.1f} s = {loop_rate:.1f} sentences/s "
        f"(load {before} -> {load()})"
    )
    difference = max(abs(a - b) for a, b in zip(ours, reference))
    print(f"speed-up {rate / loop_rate:.1f}x; largest |ours - loop| log-likelihood {difference:.2e}")
    print(
        f"estimate for the whole {args.set} set ({len(every)} sentences) at ours' rate: "
        f"{len(every) / rate / 60:.1f} min"
    )


if __name__ == "__main__":
    main()
