"""CrowS-Pairs throughput and peak memory: our task vs the stock harness formulation vs plain loops.

    LM_EVAL_BIAS_DATA_DIR=/path/to/data python benchmarks/crows_pairs_speed.py [--model PATH] [--masked-model PATH]
        [--quick | --limit N] [--variants ours stock floor] [--device cuda]

Every variant runs in a fresh subprocess so its peak resident memory (ru_maxrss) is its own.
Variants (causal model): `ours` (crows_pairs_bias through lm-eval with quantized_hf; `ours_paper`:
the same under --metadata '{"protocol": "paper"}'),
`stock` (lm-eval's crows_pairs_english YAML pointed at the same CSV, --model hf),
`loop` (one sentence per forward, full log-softmax), `floor` (the exact-scoring floor: the
batched body plus the LM head at every scored position, one head product per batch, no
normalisation). The summary line gives ours/stock and ours/floor (targets: <= 0.9 and <= 1.2)
and our peak memory against 1.5x the weights + 1 GB. --model defaults to $GEMMA_DIR, else
google/gemma-3-270m. --quick: 100 pairs and no `loop` (for iterating; the full file is the
measurement). With --masked-model: `pll_batched` (our scorer) vs `pll_loop` (one masked copy
per forward) and the roofline figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

CAUSAL_VARIANTS = ("ours", "ours_paper", "stock", "loop", "floor")
MASKED_VARIANTS = ("pll_batched", "pll_loop")


def crows_pairs_csv() -> Path:
    from lm_eval_bias.data.sources import benchmark_file

    return benchmark_file("crows_pairs")


def sentence_pairs() -> list[tuple[str, str]]:
    frame = pd.read_csv(crows_pairs_csv())
    return list(zip(frame["sent_more"], frame["sent_less"]))


def limited_data_dir(limit: int) -> str:
    """A data folder holding about `limit` pairs, the first ones of every bias type in proportion,
    so every variant scores the same pairs and every subtask has some."""
    folder = Path(tempfile.mkdtemp(prefix="crows_limited_"))
    (folder / "crows_pairs").mkdir()
    frame = pd.read_csv(crows_pairs_csv(), index_col=0)
    share = limit / len(frame)
    kept = [group.head(max(1, round(share * len(group)))) for _, group in frame.groupby("bias_type", sort=False)]
    pd.concat(kept).sort_index().to_csv(folder / "crows_pairs" / "crows_pairs_anonymized.csv")
    return str(folder)


def run_ours_paper(args) -> float:
    return run_ours(args, metadata={"protocol": "paper"})


def run_ours(args, metadata: dict | None = None) -> float:
    import lm_eval
    from lm_eval.tasks import TaskManager

    from lm_eval_bias.model_wrappers.quantized_hf import QuantizedHFLM

    lm = QuantizedHFLM(
        pretrained=args.model, device=args.device, batch_size=args.batch_size, quantization=args.quantization
    )
    task_manager = TaskManager()  # indexing the harness's task folders is not scoring: keep it out of the time
    start = time.perf_counter()
    lm_eval.simple_evaluate(
        model=lm, tasks=["crows_pairs_bias"], task_manager=task_manager, bootstrap_iters=0, metadata=metadata
    )
    return time.perf_counter() - start


STOCK_TASK = "crows_pairs_english_localcsv"


def stock_task_dir() -> Path:
    """A folder for lm-eval's --include_path holding lm-eval's own crows_pairs_english YAML and utils.py,
    pointed at the local CSV (task STOCK_TASK): the stock formulation every speed comparison is against."""
    import lm_eval

    stock_dir = Path(lm_eval.__file__).parent / "tasks" / "crows_pairs"
    include = Path(tempfile.mkdtemp(prefix="stock_crows_"))
    shutil.copy(stock_dir / "utils.py", include / "utils.py")
    config = (stock_dir / "crows_pairs_english.yaml").read_text()
    config = config.replace("task: crows_pairs_english", f"task: {STOCK_TASK}")
    config = config.replace("dataset_path: jannalu/crows_pairs_multilingual", "dataset_path: csv")
    config = config.replace("dataset_name: english", f"dataset_kwargs:\n  data_files:\n    test: {crows_pairs_csv()}")
    config = config.replace("tag:\n  - crows_pairs\n", "")
    (include / f"{STOCK_TASK}.yaml").write_text(config)
    return include


def run_stock(args) -> float:
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    include = stock_task_dir()
    lm = HFLM(pretrained=args.model, device=args.device, batch_size=args.batch_size)
    task_manager = TaskManager(include_path=str(include))
    start = time.perf_counter()
    lm_eval.simple_evaluate(
        model=lm,
        tasks=[STOCK_TASK],
        task_manager=task_manager,
        bootstrap_iters=0,
    )
    return time.perf_counter() - start


def _causal_model(path, device="cpu"):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_grad_enabled(False)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval().to(device)
    return model, AutoTokenizer.from_pretrained(path)


def _synchronized(device: str) -> None:
    """Wait for an accelerator's queued work, so that a wall time covers it."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _prefixed(tokenizer, sentence):
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    return [prefix, *tokenizer.encode(sentence, add_special_tokens=False)]


def run_loop(args) -> float:
    import torch

    model, tokenizer = _causal_model(args.model, args.device)
    sentences = [s for pair in sentence_pairs() for s in pair]
    start = time.perf_counter()
    for sentence in sentences:
        ids = torch.tensor([_prefixed(tokenizer, sentence)], device=args.device)
        logprobs = torch.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)
        logprobs.gather(1, ids[0, 1:, None]).sum().item()
    return time.perf_counter() - start


def run_floor(args) -> float:
    """Body over each length-sorted batch, then the LM head over all its scored positions at once
    (every position but the last of each prefixed sentence): the products exact scoring cannot skip."""
    from lm_eval_bias.scoring.batching import length_sorted_batches, right_padded

    model, tokenizer = _causal_model(args.model, args.device)
    inputs = [_prefixed(tokenizer, s)[:-1] for pair in sentence_pairs() for s in pair]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    head = model.get_output_embeddings()
    start = time.perf_counter()
    for batch in length_sorted_batches([len(s) for s in inputs], args.batch_size):
        ids, mask = right_padded([inputs[i] for i in batch], pad, args.device)
        hidden = model.base_model(input_ids=ids, attention_mask=mask)[0]
        head(hidden[mask.bool()])
    _synchronized(args.device)
    return time.perf_counter() - start


def _masked_model(path):
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    torch.set_grad_enabled(False)
    return AutoModelForMaskedLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def run_pll_batched(args) -> float:
    from lm_eval_bias.scoring.masked import score_minimal_pairs

    model, tokenizer = _masked_model(args.masked_model)
    pairs = sentence_pairs()
    start = time.perf_counter()
    scores = score_minimal_pairs(model, tokenizer, pairs, batch_size=args.batch_size)
    elapsed = time.perf_counter() - start
    Path(args.scores_out).write_text(json.dumps(scores))
    return elapsed


def run_pll_loop(args) -> float:
    import torch

    from lm_eval_bias.scoring.masked import shared_token_positions

    model, tokenizer = _masked_model(args.masked_model)
    special = set(tokenizer.all_special_ids)
    scores = []
    start = time.perf_counter()
    for pair in sentence_pairs():
        ids = [tokenizer(s)["input_ids"] for s in pair]
        shared = shared_token_positions(*ids)
        pair_scores = []
        for sentence_ids, positions in zip(ids, shared):
            total = 0.0
            for position in positions:
                if sentence_ids[position] in special:
                    continue
                masked = torch.tensor([sentence_ids])
                masked[0, position] = tokenizer.mask_token_id
                logprobs = torch.log_softmax(model(masked).logits[0, position].float(), dim=-1)
                total += logprobs[sentence_ids[position]].item()
            pair_scores.append(total)
        scores.append(pair_scores)
    elapsed = time.perf_counter() - start
    Path(args.scores_out).write_text(json.dumps(scores))
    return elapsed


RUNNERS = {
    "ours": run_ours,
    "ours_paper": run_ours_paper,
    "stock": run_stock,
    "loop": run_loop,
    "floor": run_floor,
    "pll_batched": run_pll_batched,
    "pll_loop": run_pll_loop,
}


def child(args) -> None:
    elapsed = RUNNERS[args.variant](args)
    peak_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"variant": args.variant, "seconds": elapsed, "peak_bytes": peak_bytes}))


def weights_bytes(path: str) -> int:
    return sum(f.stat().st_size for f in Path(path).glob("*.safetensors"))


def parent(args) -> None:
    if args.quick:
        args.limit = args.limit or 100
        args.variants = args.variants or [v for v in RUNNERS if v != "loop"]
    if args.limit:
        os.environ["LM_EVAL_BIAS_DATA_DIR"] = limited_data_dir(args.limit)
    sentences = 2 * len(sentence_pairs())
    runs = [(v, args.model) for v in CAUSAL_VARIANTS] + (
        [(v, args.masked_model) for v in MASKED_VARIANTS] if args.masked_model else []
    )
    runs = [(v, m) for v, m in runs if not args.variants or v in args.variants]
    rows, scores_dir = [], Path(tempfile.mkdtemp(prefix="pll_scores_"))
    for variant, model in runs:
        command = [
            sys.executable,
            __file__,
            "--child",
            "--variant",
            variant,
            "--model",
            args.model,
            "--batch-size",
            str(args.batch_size),
            "--device",
            args.device,
            "--quantization",
            args.quantization,
            "--scores-out",
            str(scores_dir / f"{variant}.json"),
        ]
        command += ["--masked-model", args.masked_model] if args.masked_model else []
        finished = subprocess.run(command, capture_output=True, text=True, env=os.environ)
        if finished.returncode != 0:
            sys.exit(f"{variant} failed:\n{finished.stderr[-3000:]}")
        output = finished.stdout
        result = json.loads(output.strip().splitlines()[-1])
        rows.append(
            {
                "variant": variant,
                "model": Path(model).name,
                "wall_s": round(result["seconds"], 2),
                "sentences_per_s": round(sentences / result["seconds"], 1),
                "peak_GB": round(result["peak_bytes"] / 1e9, 2),
            }
        )
    table = pd.DataFrame(rows)
    print(
        f"CrowS-Pairs: {sentences} sentences, batch size {args.batch_size}, model weights "
        f"{weights_bytes(args.model) / 1e9:.2f} GB (memory target: {1.5 * weights_bytes(args.model) / 1e9 + 1:.2f} GB)"
    )
    print(table.to_string(index=False))
    print(summary(rows, 1.5 * weights_bytes(args.model) + 1e9))
    speed = {r["variant"]: r["wall_s"] for r in rows}
    if {"pll_batched", "pll_loop"} <= set(speed):
        batched = json.loads((scores_dir / "pll_batched.json").read_text())
        loop = json.loads((scores_dir / "pll_loop.json").read_text())
        worst = max(abs(a - b) for x, y in zip(batched, loop) for a, b in zip(x, y))
        print(
            f"masked PLL: batched is {speed['pll_loop'] / speed['pll_batched']:.1f}x faster than one copy per "
            f"forward; largest score difference {worst:.2e}"
        )
    if "pll_batched" in speed:
        print(roofline(args.masked_model, speed["pll_batched"], speed.get("pll_loop")))


def summary(rows: list[dict], memory_target: float) -> str:
    """The issue's targets, read off the table: ours/stock <= 0.9, ours/floor <= 1.2, memory."""
    wall = {r["variant"]: r["wall_s"] for r in rows}
    parts = [f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"]
    if "ours" in wall:
        parts += [
            f"{o}/{v} {wall[o] / wall[v]:.2f}"
            for o in ("ours", "ours_paper")
            if o in wall
            for v in ("stock", "floor", "loop")
            if v in wall
        ]
        ours_peak = next(r["peak_GB"] for r in rows if r["variant"] == "ours")
        parts.append(f"ours peak {ours_peak:.2f} GB vs target {memory_target / 1e9:.2f} GB")
    return "; ".join(parts)


def roofline(masked_model: str, batched_s: float, loop_s: float | None) -> str:
    """What fraction of this CPU's fp32 matrix-product throughput each masked variant reaches
    (the one-copy loop's only where it ran: it takes ~4x the batched time)."""
    import time

    import torch
    from transformers import AutoConfig, AutoTokenizer

    from lm_eval_bias.scoring.masked import shared_token_positions
    from lm_eval_bias.scoring.packed_linears import packed_linears

    config, tokenizer = AutoConfig.from_pretrained(masked_model), AutoTokenizer.from_pretrained(masked_model)
    special = set(tokenizer.all_special_ids)
    tokens = 0
    for pair in sentence_pairs():
        ids = [tokenizer(s)["input_ids"] for s in pair]
        for sentence_ids, positions in zip(ids, shared_token_positions(*ids)):
            tokens += len(sentence_ids) * sum(sentence_ids[p] not in special for p in positions)
    hidden, inner = config.hidden_size, config.intermediate_size
    flops = 2 * tokens * config.num_hidden_layers * (4 * hidden * hidden + 2 * hidden * inner)

    def gemm_rate(rows: int) -> float:
        """The best of 5 timed rounds of the encoder's two product shapes (rows x hidden -> inner and back)
        through each fp32 product PyTorch ships for a CPU: MKL's sgemm (a plain `nn.Linear`) and
        oneDNN's on a weight packed once (`packed_linears`, what the masked scorers use; where
        oneDNN is missing it packs nothing and both rounds time MKL). Best of rounds, so that one
        slow round (a clock ramp, another process) does not lower the roofline."""
        best = 0.0
        for width_in, width_out in ((hidden, inner), (inner, hidden)):
            layer, inputs = torch.nn.Linear(width_in, width_out, bias=False), torch.randn(rows, width_in)
            for packed in (False, True):
                with torch.inference_mode(), packed_linears(layer) if packed else contextlib.nullcontext():
                    for _ in range(3):
                        layer(inputs)
                    repeats = max(3, 40_000 // rows)
                    for _ in range(5):
                        start = time.perf_counter()
                        for _ in range(repeats):
                            layer(inputs)
                        best = max(best, 2 * rows * hidden * inner * repeats / (time.perf_counter() - start))
        return best

    peak = max(gemm_rate(rows) for rows in (2048, 8192))
    batched = flops / batched_s
    line = (
        f"encoder-layer FLOPs {flops / 1e12:.2f} T (attention scores not counted): batched {batched / 1e9:.0f} "
        f"GFLOP/s = {batched / peak:.0%} of this CPU's fp32 matmul roofline ({peak / 1e9:.0f} GFLOP/s, the best "
        f"of MKL and packed oneDNN at 2048 and 8192 rows; target >= 85%)"
    )
    if loop_s is None:
        return line
    return (
        f"{line}, one copy per forward {flops / loop_s / 1e9:.0f} GFLOP/s "
        f"({gemm_rate(17) / 1e9:.0f} GFLOP/s at 17 rows, one sentence)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        default=os.environ.get("GEMMA_DIR", "google/gemma-3-270m"),
        help="causal LM folder or Hub id (default: $GEMMA_DIR, else google/gemma-3-270m)",
    )
    parser.add_argument("--masked-model", help="masked LM folder, for the pseudo-log-likelihood comparison")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="causal variants' device (cpu, cuda, ...)")
    parser.add_argument("--quantization", default="none")
    parser.add_argument("--limit", type=int, help="about N pairs, every bias type in proportion")
    parser.add_argument("--variants", nargs="+", choices=RUNNERS, help="run only these variants")
    parser.add_argument("--quick", action="store_true", help="100 pairs (or --limit), no loop: for iterating")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", choices=RUNNERS, help=argparse.SUPPRESS)
    parser.add_argument("--scores-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    child(args) if args.child else parent(args)


if __name__ == "__main__":
    main()
