"""StereoSet and SEAT throughput: our harness tasks (batched) against a one-item-per-forward loop.

    LM_EVAL_BIAS_DATA_DIR=/path/to/data python benchmarks/stereoset_seat_speed.py \\
        [--model DIR] [--stereoset-limit 50] [--seat-tests weat6,weat7,weat8] [--quick] [--tiny]

`ours` runs stereoset_bias / seat_bias subtasks through lm-eval with quantized_hf (the task
index is built beforehand; reading the data, scoring and metrics are timed). `loop` scores a
subset of the same items (the first --loop-limit clusters of every subtask, the
--loop-seat-tests) one per forward pass with a plain transformers model, so the two are
compared in items per second: a causal sentence (or context
+ candidate), a masked copy, or a sentence to embed per forward (SEAT's shared attribute
sentences embedded again for every test, as bias-bench does), then the same metrics. The
largest difference between the two runs' scores is printed as a check. `--tiny` adds a tiny
random GPT-NeoX and BERT (2 layers, hidden 64) with tokenizers trained on the data, run on
the full data (every cluster, all 17 SEAT tests). Timings on a shared machine are noisy: the
1-minute load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lm_eval_bias.data.seat import ROLES, TESTS, load_seat_test
from lm_eval_bias.data.sources import benchmark_file
from lm_eval_bias.data.stereoset import CANDIDATES, load_stereoset
from lm_eval_bias.metrics.seat import seat_test
from lm_eval_bias.scoring.stereoset import causal_pair, pll_copies, target_word_copies

DOMAINS = ("gender", "profession", "race", "religion")
SUBTASKS = [f"{s}_{d}" for s in ("intrasentence", "intersentence") for d in DOMAINS]
SEAT_FILES = {name: file for tests in TESTS.values() for name, file in tests.items()}


def stereoset_requests(limit: int | None) -> list[tuple[str, str, str, str]]:
    """The requests of the first `limit` clusters of every subtask, in the harness's order."""
    frame = load_stereoset(benchmark_file("stereoset"))
    out = []
    for subtask in SUBTASKS:
        split, domain = subtask.split("_")
        rows = frame[(frame["split"] == split) & (frame["bias_type"] == domain)].head(limit or len(frame))
        out += [(split, r.context, getattr(r, c), "target_word") for r in rows.itertuples() for c in CANDIDATES]
    return out


def run_ours(lm, tasks: list[str], limit: int | None):
    import lm_eval
    from lm_eval.tasks import TaskManager

    from lm_eval_bias.catalog import with_our_tasks

    manager = TaskManager(include_defaults=False, include_path=with_our_tasks())  # ours only: fast to index
    start = time.perf_counter()
    results = lm_eval.simple_evaluate(model=lm, tasks=tasks, task_manager=manager, limit=limit, bootstrap_iters=0)
    return time.perf_counter() - start, results


@torch.no_grad()
def stereoset_loop(model, tokenizer, masked: bool, requests) -> list[float]:
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    scores = []
    for split, context, sentence, _ in requests:
        if masked:
            if split == "intrasentence":
                filled = target_word_copies(tokenizer, context, sentence)
                items = [(ids, None, pos, target) for ids, pos, target in filled]
            else:
                items = [(ids, types, pos, ids[pos]) for ids, types, pos in pll_copies(tokenizer, context, sentence)]
            values = []
            for ids, types, position, target in items:
                masked_ids = list(ids)
                masked_ids[position] = tokenizer.mask_token_id
                extra = {"token_type_ids": torch.tensor([types])} if types is not None else {}
                logits = model(input_ids=torch.tensor([masked_ids]), **extra).logits[0, position].double()
                values.append(float(torch.log_softmax(logits, -1)[target]))
            exp = [np.exp(v) for v in values]
            scores.append(float(np.mean(exp)) if split == "intrasentence" else float(np.mean(values)))
        else:
            context_text, continuation = causal_pair(split, context, sentence)
            if context_text:
                whole, head = tokenizer.encode(context_text + continuation), tokenizer.encode(context_text)
                context_ids, ids = whole[: len(head)], whole[len(head) :]
            else:
                context_ids, ids = [prefix], tokenizer.encode(continuation, add_special_tokens=False)
            logits = model(input_ids=torch.tensor([context_ids + ids])).logits[0].double()
            logprobs = torch.log_softmax(logits[len(context_ids) - 1 : -1], -1)
            scores.append(float(logprobs.gather(1, torch.tensor(ids)[:, None]).mean()))
    return scores


@torch.no_grad()
def seat_loop(model, tokenizer, tests: list[str]) -> dict[str, float]:
    body = getattr(model, "base_model", model)
    sizes = {}
    for test in tests:
        sets = load_seat_test(benchmark_file("seat", test=SEAT_FILES[test]))
        vectors = {}
        for role in ROLES:
            rows = []
            for sentence in sets[role]["examples"]:
                hidden = body(**tokenizer(sentence, return_tensors="pt"))[0][0].double().mean(0)
                rows.append((hidden / hidden.norm()).numpy())
            vectors[role] = np.stack(rows)
        sizes[test] = seat_test(*(vectors[r] for r in ROLES))["effect_size"]
    return sizes


def tiny_models(folder: Path) -> list[str]:
    """A tiny GPT-NeoX and BERT whose tokenizers are trained on the StereoSet and SEAT sentences."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForMaskedLM, GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

    frame = load_stereoset(benchmark_file("stereoset"))
    corpus = [s for c in ("context", *CANDIDATES) for s in frame[c]]
    corpus += [
        s
        for file in SEAT_FILES.values()
        for r in load_seat_test(benchmark_file("seat", test=file)).values()
        for s in r["examples"]
    ]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer, bpe.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    bpe.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=4000,
            special_tokens=["<|endoftext|>", "<|pad|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    causal_tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|pad|>",
        unk_token="<|endoftext|>",
    )
    wp = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wp.normalizer, wp.pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    wp.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    wp.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=4000, special_tokens=specials))
    wp.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", wp.token_to_id("[CLS]")), ("[SEP]", wp.token_to_id("[SEP]"))],
    )
    masked_tok = PreTrainedTokenizerFast(
        tokenizer_object=wp,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
    )
    torch.manual_seed(0)
    size = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128}
    causal = GPTNeoXForCausalLM(
        GPTNeoXConfig(
            vocab_size=len(causal_tok),
            bos_token_id=0,
            eos_token_id=0,
            pad_token_id=1,
            tie_word_embeddings=False,
            **size,
        )
    )
    masked = BertForMaskedLM(BertConfig(vocab_size=len(masked_tok), pad_token_id=0, **size))
    paths = []
    for name, model, tokenizer in (("tiny-gpt-neox", causal, causal_tok), ("tiny-bert", masked, masked_tok)):
        model.eval().save_pretrained(folder / name)
        tokenizer.save_pretrained(folder / name)
        paths.append(str(folder / name))
    return paths


def benchmark(path: str, args, stereoset_limit: int | None, seat_tests: list[str]) -> list[dict]:
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

    from lm_eval_bias.model_wrappers.quantized_hf import QuantizedHFLM

    lm = QuantizedHFLM(pretrained=path, device="cpu", batch_size=args.batch_size)
    masked = lm.backend == "masked"
    auto = AutoModelForMaskedLM if masked else AutoModelForCausalLM
    model, tokenizer = auto.from_pretrained(path, dtype=torch.float32).eval(), AutoTokenizer.from_pretrained(path)
    rows, name = [], Path(path).name

    loop_limit = min(args.loop_limit, stereoset_limit) if stereoset_limit else args.loop_limit
    seconds, results = run_ours(lm, [f"stereoset_bias_{s}" for s in SUBTASKS], stereoset_limit)
    docs = {s: sorted(results["samples"][f"stereoset_bias_{s}"], key=lambda d: d["doc_id"]) for s in SUBTASKS}
    ours = [float(r) for s in SUBTASKS for d in docs[s][:loop_limit] for r in d["filtered_resps"]]
    requests = stereoset_requests(loop_limit)
    start = time.perf_counter()
    loop = stereoset_loop(model, tokenizer, masked, requests)
    loop_seconds = time.perf_counter() - start
    check = max(abs(a - b) / max(1.0, abs(b)) for a, b in zip(ours, loop))
    items = sum(len(d["filtered_resps"]) for s in SUBTASKS for d in docs[s])
    rows += [
        {"benchmark": "stereoset", "model": name, "variant": "ours", "items": items, "wall_s": seconds, "check": check},
        {
            "benchmark": "stereoset",
            "model": name,
            "variant": "loop",
            "items": len(requests),
            "wall_s": loop_seconds,
            "check": check,
        },
    ]

    loop_tests = [t for t in seat_tests if t in args.loop_seat_tests.split(",")] or seat_tests[:1]
    seconds, results = run_ours(lm, [f"seat_bias_{t}" for t in seat_tests], None)
    sentences = {t: sum(len(d["resps"]) for d in results["samples"][f"seat_bias_{t}"]) for t in seat_tests}
    start = time.perf_counter()
    sizes = seat_loop(model, tokenizer, loop_tests)
    loop_seconds = time.perf_counter() - start
    check = max(abs(results["results"][f"seat_bias_{t}"]["effect_size,none"] - sizes[t]) for t in loop_tests)
    rows += [
        {
            "benchmark": "seat",
            "model": name,
            "variant": "ours",
            "items": sum(sentences.values()),
            "wall_s": seconds,
            "check": check,
        },
        {
            "benchmark": "seat",
            "model": name,
            "variant": "loop",
            "items": sum(sentences[t] for t in loop_tests),
            "wall_s": loop_seconds,
            "check": check,
        },
    ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        help="model folder or Hub id (repeatable; default $GEMMA_DIR, else google/gemma-3-270m)",
    )
    parser.add_argument("--tiny", action="store_true", help="also a tiny GPT-NeoX and BERT, on the full data")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--stereoset-limit", type=int, default=50, help="clusters per subtask scored by ours for --model (0: all)"
    )
    parser.add_argument("--loop-limit", type=int, default=5, help="clusters per subtask scored by the loop")
    parser.add_argument(
        "--seat-tests", default="weat6,weat7,weat8", help="SEAT tests scored by ours for --model (comma-separated)"
    )
    parser.add_argument("--loop-seat-tests", default="weat7,weat8", help="SEAT tests scored by the loop")
    parser.add_argument("--quick", action="store_true", help="5 clusters per subtask and weat7,weat8 for ours too")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    if args.quick:
        args.stereoset_limit, args.seat_tests = args.loop_limit, args.loop_seat_tests
    if not args.model and not args.tiny:
        args.model = [os.environ.get("GEMMA_DIR", "google/gemma-3-270m")]
    runs = [(path, args.stereoset_limit or None, args.seat_tests.split(",")) for path in args.model]
    if args.tiny:
        runs += [(path, None, list(SEAT_FILES)) for path in tiny_models(Path(tempfile.mkdtemp(prefix="tiny_")))]
    rows = [row for path, limit, tests in runs for row in benchmark(path, args, limit, tests)]
    table = pd.DataFrame(rows)
    table["items_per_s"] = (table["items"] / table["wall_s"]).round(1)
    loop_rate = table[table.variant == "loop"].set_index(["benchmark", "model"])["items_per_s"]
    table["speedup"] = [
        round(r / loop_rate[(b, m)], 1) for b, m, r in zip(table.benchmark, table.model, table.items_per_s)
    ]
    table["wall_s"] = table["wall_s"].round(1)
    table["check"] = table["check"].map(lambda x: f"{x:.1e}")
    print(
        f"batch size {args.batch_size}, torch threads {torch.get_num_threads()}, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        "items: StereoSet candidate sentences, SEAT sentences (a sentence shared by several tests counts once per "
        "test); the loop runs on a subset (--loop-limit clusters per subtask, --loop-seat-tests) and speedup "
        "compares items/s; check: largest score (StereoSet, relative) or effect-size (SEAT) difference between "
        "ours and the loop on that subset"
    )
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
