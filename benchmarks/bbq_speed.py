"""BBQ wall time and peak memory: bbq_bias (quantized_hf) vs the same items through stock `--model hf`.

    LM_EVAL_BIAS_DATA_DIR=/path/to/data python benchmarks/bbq_speed.py [--model PATH] [--per-category 200]
        [--variants ours stock] [--all]

Both variants score the first --per-category items of every BBQ category file in the data folder
(the six offline ones: 1,200 items, 3,600 answers at 200), each in a fresh subprocess so that its
peak resident memory (ru_maxrss) is its own, with the model loaded before the clock starts:
`ours` is the bbq_bias subtasks through lm-eval with quantized_hf; `stock` is a plain lm-eval YAML
task with the same prompt, the same three answers and lm-eval's `acc`, through --model hf. The
summary line gives ours/stock (target <= 0.2), our peak memory against 1.5x the weights + 1 GB and
the load average; both variants' chosen answers are compared. --all: also the time of bbq_bias
over every item of the files (ours only). --model defaults to $GEMMA_DIR, else google/gemma-3-270m.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STOCK_TASK = """task: bbq_stock_formulation
dataset_path: json
dataset_kwargs:
  data_files:
    test: {files}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}\\n\\nQ: {{{{question}}}}\\nA:"
doc_to_choice: "{{{{[ans0, ans1, ans2]}}}}"
doc_to_target: label
metric_list:
  - metric: acc
"""


def categories(data_dir: Path) -> list[str]:
    from lm_eval_bias.data.bbq import available_categories

    return available_categories(data_dir)


def limited_data_dir(source: Path, per_category: int | None) -> Path:
    """A data folder with the first `per_category` items of each category file (all with None)."""
    folder = Path(tempfile.mkdtemp(prefix="bbq_limited_"))
    (folder / "bbq").mkdir()
    for category in categories(source):
        lines = (source / "bbq" / f"{category}.jsonl").read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if line.strip()][:per_category]
        (folder / "bbq" / f"{category}.jsonl").write_text("\n".join(kept) + "\n", encoding="utf-8")
    return folder


def run_ours(args) -> tuple[float, list[int]]:
    import lm_eval
    from lm_eval.tasks import TaskManager

    from lm_eval_bias.data.bbq import subtask_name
    from lm_eval_bias.model_wrappers.quantized_hf import QuantizedHFLM

    lm = QuantizedHFLM(pretrained=args.model, device=args.device, batch_size=args.batch_size)
    tasks = [subtask_name(c) for c in categories(Path(os.environ["LM_EVAL_BIAS_DATA_DIR"]))]
    task_manager = TaskManager()  # indexing the harness's task folders is not scoring: keep it out of the time
    start = time.perf_counter()
    results = lm_eval.simple_evaluate(model=lm, tasks=tasks, task_manager=task_manager, log_samples=True)
    elapsed = time.perf_counter() - start
    return elapsed, [_choice(s) for task in tasks for s in sorted(results["samples"][task], key=_doc_id)]


def run_stock(args) -> tuple[float, list[int]]:
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    data = Path(os.environ["LM_EVAL_BIAS_DATA_DIR"])
    files = [str(data / "bbq" / f"{c}.jsonl") for c in categories(data)]
    include = Path(tempfile.mkdtemp(prefix="bbq_stock_"))
    (include / "bbq_stock_formulation.yaml").write_text(STOCK_TASK.format(files=json.dumps(files)))
    lm = HFLM(pretrained=args.model, device=args.device, batch_size=args.batch_size)
    task_manager = TaskManager(include_path=str(include))
    start = time.perf_counter()
    results = lm_eval.simple_evaluate(
        model=lm, tasks=["bbq_stock_formulation"], task_manager=task_manager, log_samples=True
    )
    elapsed = time.perf_counter() - start
    return elapsed, [_choice(s) for s in sorted(results["samples"]["bbq_stock_formulation"], key=_doc_id)]


def _doc_id(sample) -> int:
    return sample["doc_id"]


def _choice(sample) -> int:
    scores = [float(response[0]) for response in sample["filtered_resps"]]
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


RUNNERS = {"ours": run_ours, "stock": run_stock}


def child(args) -> None:
    elapsed, choices = RUNNERS[args.variant](args)
    peak_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"variant": args.variant, "seconds": elapsed, "peak_bytes": peak_bytes, "choices": choices}))


def measure(args, variant: str, data_dir: Path) -> dict:
    command = [sys.executable, __file__, "--child", "--variant", variant, "--model", args.model]
    command += ["--batch-size", str(args.batch_size), "--device", args.device]
    finished = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "LM_EVAL_BIAS_DATA_DIR": str(data_dir)}
    )
    if finished.returncode != 0:
        sys.exit(f"{variant} failed:\n{finished.stderr[-3000:]}")
    return json.loads(finished.stdout.strip().splitlines()[-1])


def weights_bytes(path: str) -> int:
    return sum(f.stat().st_size for f in Path(path).glob("*.safetensors"))


def parent(args) -> None:
    from lm_eval_bias.data.sources import DATA_DIR_ENV, data_dir_from_env

    source = data_dir_from_env()
    if source is None or not categories(source):
        sys.exit(f"usage: set {DATA_DIR_ENV} to a folder with bbq/<Category>.jsonl files")
    limited = limited_data_dir(source, args.per_category)
    items = sum(1 for c in categories(limited) for _ in (limited / "bbq" / f"{c}.jsonl").open())
    target = 1.5 * weights_bytes(args.model) + 1e9
    print(
        f"BBQ: {items} items ({3 * items} answers) in {len(categories(limited))} categories, batch size "
        f"{args.batch_size}, model {Path(args.model).name}, memory target {target / 1e9:.2f} GB"
    )
    results = {}
    for variant in args.variants:
        results[variant] = measure(args, variant, limited)
        r = results[variant]
        print(
            f"  {variant:<6} {r['seconds']:8.1f} s  {items / r['seconds']:6.1f} items/s  "
            f"peak {r['peak_bytes'] / 1e9:.2f} GB"
        )
    parts = [f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"]
    if {"ours", "stock"} <= set(results):
        ours, stock = results["ours"], results["stock"]
        same = sum(a == b for a, b in zip(ours["choices"], stock["choices"]))
        parts += [
            f"ours/stock {ours['seconds'] / stock['seconds']:.3f} (target <= 0.2)",
            f"same answer on {same} of {len(ours['choices'])} items",
        ]
    if "ours" in results:
        parts.append(f"ours peak {results['ours']['peak_bytes'] / 1e9:.2f} GB vs target {target / 1e9:.2f} GB")
    print("; ".join(parts))
    if args.all:
        whole = measure(args, "ours", source)
        total = len(whole["choices"])
        print(
            f"bbq_bias over all {total} items: {whole['seconds']:.1f} s ({total / whole['seconds']:.1f} items/s), "
            f"peak {whole['peak_bytes'] / 1e9:.2f} GB; load average {os.getloadavg()[0]:.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=os.environ.get("GEMMA_DIR") or "google/gemma-3-270m")
    parser.add_argument("--per-category", type=int, default=200, help="items of each category file (default 200)")
    parser.add_argument("--variants", nargs="+", choices=tuple(RUNNERS), default=list(RUNNERS))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--all", action="store_true", help="also time bbq_bias over every item (ours only)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", choices=tuple(RUNNERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.per_category < 1 or args.batch_size < 1:
        parser.error("--per-category and --batch-size must be positive integers")
    child(args) if args.child else parent(args)


if __name__ == "__main__":
    main()
