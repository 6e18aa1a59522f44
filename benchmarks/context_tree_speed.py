"""BBQ's multiple-choice requests scored with each context's body once (``shared_context``) against the tree of
contexts (``context_tree``: a beginning shared by several contexts once), alternating in one process.

    GEMMA_DIR=/path/to/gemma-3-270m LM_EVAL_BIAS_DATA_DIR=/path/to/data \\
      python benchmarks/context_tree_speed.py [--per-category 150] [--categories 2] [--rounds 2] [--threads 1]

Takes the first --per-category items of the first --categories category files, builds lm-eval's
requests for them (prompt ``{context}\\n\\nQ: {question}\\nA:`` after the BOS token, each answer after a
space) and scores them through ``causal.score_continuations(share_contexts=True, share_prefixes=True)``
--rounds times each way, flat then tree. Prints the positions each way runs through the body, every
wall time, the largest difference in a summed log-probability and how many items get the same answer.
Both ways run under the same load, so their ratio is what to compare.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lm_eval_bias.data.bbq import available_categories, bbq_file, load_bbq
from lm_eval_bias.scoring import causal, context_tree, shared_context


def requests(tokenizer, data_dir: str, categories: int, per_category: int):
    out = []
    for category in available_categories(data_dir)[:categories]:
        for item in load_bbq(bbq_file(category, data_dir))[:per_category]:
            text = f"{item['context']}\n\nQ: {item['question']}\nA:"
            prompt = [tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]
            for i in range(3):
                out.append((prompt, tokenizer(" " + item[f"ans{i}"], add_special_tokens=False)["input_ids"]))
    return out


def tree_positions(contexts) -> int:
    total, stack = 0, list(context_tree.context_tree(contexts))
    while stack:
        node = stack.pop()
        total += len(node.segment)
        stack += node.children
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=os.environ.get("GEMMA_DIR") or "google/gemma-3-270m")
    parser.add_argument("--per-category", type=int, default=150)
    parser.add_argument("--categories", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data_dir = os.environ["LM_EVAL_BIAS_DATA_DIR"]
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    reqs = requests(tokenizer, data_dir, args.categories, args.per_category)
    contexts = {tuple(c) for c, _ in reqs}
    print(
        f"{len(reqs) // 3} items, {len(contexts)} distinct contexts: {sum(map(len, contexts)):,} context positions "
        f"each once, {tree_positions(list(contexts)):,} in the tree; {args.threads} thread(s), "
        f"load {os.getloadavg()[0]:.1f}"
    )
    ways = {"flat": shared_context.score_shared_contexts, "tree": context_tree.score_context_tree}
    times: dict[str, list[float]] = {name: [] for name in ways}
    scores: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for name, scorer in ways.items():
            causal.score_context_tree = scorer  # the name causal calls for requests that share a context
            start = time.perf_counter()
            got = causal.score_continuations(
                model, reqs, batch_size=args.batch_size, pad_token_id=0, share_contexts=True, share_prefixes=True
            )
            times[name].append(time.perf_counter() - start)
            scores[name] = [s.logprob for s in got]
            print(f"  {name}: {times[name][-1]:.1f} s", flush=True)
    causal.score_context_tree = ways["tree"]
    flat, tree = torch.tensor(scores["flat"]), torch.tensor(scores["tree"])
    same = int((flat.view(-1, 3).argmax(1) == tree.view(-1, 3).argmax(1)).sum())
    ratios = ", ".join(f"{t / f:.2f}" for f, t in zip(times["flat"], times["tree"]))
    largest = float((flat - tree).abs().max())
    print(
        f"tree/flat time {ratios}; largest |difference| in a summed log-probability {largest:.2e}; "
        f"same answer on {same} of {len(flat) // 3} items; load {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
