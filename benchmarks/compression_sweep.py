"""Compression sweep on CrowS-Pairs: quantization time, throughput, size, and score drift vs fp32.

    LM_EVAL_BIAS_DATA_DIR=../shared/data python benchmarks/compression_sweep.py --model PATH --limit 100

For each method (default: none, dynamic_int8, int8_weight_only, bnb_int8, bnb_nf4, gptq 4-bit
group 128, rtn 8/6/4/3/2 group 128, magnitude / Wanda 50% and 2:4, SparseGPT 50%, AWQ 4-bit group 128,
SmoothQuant W8A8 alpha 0.5) a fresh subprocess builds `QuantizedHFLM` on CPU and scores both sentences of
the first --limit CrowS-Pairs pairs through its `loglikelihood` (the harness path). Reported:
  quantize_s   time in the quantizer (postprocess hook; for load-time methods such as
               bitsandbytes: load time minus the fp32 load time; gptq: the recorded time of
               the quantization run that filled the cache; likewise the pruning methods, awq
               and smoothquant)
  sent/s       sentences scored per second
  MB           bytes of the model's tensors in memory (torchao tensor subclasses counted by their
               int8 data and scales); packed MB: the same with rtn's fake-quant weights at their
               effective bits
  bits/w       effective bits per quantized weight (the results record; scales etc. included)
  |d score|    mean absolute change of the sentence log-likelihoods vs fp32
  stereo %     share of pairs whose sent_more scores higher (the CrowS-Pairs metric)
  sparse %     measured share of zeros in the pruned layers (pruning methods)
A method that cannot run here (not installed, wrong device) gets its error in the table.

The model folder is used through a temporary copy of its config.json without any
`quantization_config` (weights and tokenizer linked), so a stale entry in it (e.g. the gguf
one of a dequantized GGUF export) cannot override the method under test. GPTQ, Wanda,
SparseGPT, AWQ and SmoothQuant calibrate on
--calibration (a text file, one sample per line); without it, on paragraphs of the Python
standard library's docstrings (English prose available offline; never the benchmark's own
sentences, nor any other bias data).
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

METHODS: dict[str, tuple[str, dict[str, str]]] = {
    "none": ("none", {}),
    "dynamic_int8": ("dynamic_int8", {}),
    "int8_weight_only": ("int8_weight_only", {}),
    "bnb_int8": ("bnb_int8", {}),
    "bnb_nf4": ("bnb_nf4", {}),
    "gptq_4bit": ("gptq", {"bits": "4", "group_size": "128"}),
    "rtn_8bit": ("rtn", {"bits": "8", "group_size": "128"}),
    "rtn_6bit": ("rtn", {"bits": "6", "group_size": "128"}),
    "rtn_4bit": ("rtn", {"bits": "4", "group_size": "128"}),
    "rtn_3bit": ("rtn", {"bits": "3", "group_size": "128"}),
    "rtn_2bit": ("rtn", {"bits": "2", "group_size": "128"}),
    "magnitude_50": ("magnitude", {"sparsity": "0.5"}),
    "magnitude_2:4": ("magnitude", {"structure": "2:4"}),
    "wanda_50": ("wanda", {"sparsity": "0.5"}),
    "wanda_2:4": ("wanda", {"structure": "2:4"}),
    "sparsegpt_50": ("sparsegpt", {"sparsity": "0.5"}),
    "awq_4bit": ("awq", {"bits": "4", "group_size": "128"}),
    "smoothquant_w8a8": ("smoothquant", {"alpha": "0.5"}),
}
# methods that calibrate: --calibration and --gptq-samples apply to them; they report their own compression time
CALIBRATED = {
    "gptq": "quantize_seconds",
    "wanda": "compress_seconds",
    "sparsegpt": "compress_seconds",
    "awq": "compress_seconds",
    "smoothquant": "compress_seconds",
}
RECORDED_TIME = {**CALIBRATED, "magnitude": "compress_seconds"}


def crows_pairs(limit: int | None) -> list[tuple[str, str]]:
    import pandas as pd

    from lm_eval_bias.data.sources import benchmark_file

    frame = pd.read_csv(benchmark_file("crows_pairs"))
    pairs = list(zip(frame["sent_more"], frame["sent_less"]))
    return pairs[:limit] if limit else pairs


def clean_model_copy(model: str, into: Path) -> Path:
    """Link the folder's files into `into`, with config.json minus any quantization_config.

    An existing copy is reused unchanged (so a GPTQ cache keyed on its files still hits)."""
    into.mkdir(parents=True, exist_ok=True)
    for path in Path(model).iterdir():
        if path.name != "config.json" and path.is_file() and not (into / path.name).exists():
            (into / path.name).symlink_to(path.resolve())
    config = json.loads((Path(model) / "config.json").read_text())
    config.pop("quantization_config", None)
    text = json.dumps(config, indent=2)
    if not (into / "config.json").is_file() or (into / "config.json").read_text() != text:
        (into / "config.json").write_text(text)
    return into


def storage_bytes(model) -> int:
    """Bytes of the distinct tensors in the state dict, tensor subclasses (torchao) by their inner tensors."""
    import torch

    def plain(tensor):
        if hasattr(tensor, "__tensor_flatten__"):
            for name in tensor.__tensor_flatten__()[0]:
                yield from plain(getattr(tensor, name))
        elif isinstance(tensor, torch.Tensor):
            yield tensor
        elif isinstance(tensor, (tuple, list)):
            for item in tensor:
                yield from plain(item)

    seen, total = set(), 0
    for value in model.state_dict().values():
        for tensor in plain(value):
            key = (tensor.data_ptr(), tensor.numel(), tensor.dtype)
            if key not in seen:
                seen.add(key)
                total += tensor.numel() * tensor.element_size()
    return total


CALIBRATION_MODULES = (
    "abc",
    "argparse",
    "collections",
    "contextlib",
    "csv",
    "datetime",
    "decimal",
    "difflib",
    "email.message",
    "fractions",
    "functools",
    "heapq",
    "http.client",
    "inspect",
    "json",
    "logging",
    "pathlib",
    "pickle",
    "random",
    "re",
    "sched",
    "shutil",
    "statistics",
    "string",
    "subprocess",
    "tarfile",
    "textwrap",
    "threading",
    "typing",
    "unittest",
    "urllib.request",
    "zipfile",
)


def stdlib_calibration(samples: int, path: Path) -> Path:
    """Paragraphs of Python standard-library docstrings: English prose, no download, no bias data."""
    import importlib
    import inspect

    paragraphs: dict[str, None] = {}
    for name in CALIBRATION_MODULES:
        module = importlib.import_module(name)
        members = [v for _, v in sorted(vars(module).items()) if inspect.isclass(v) or inspect.isfunction(v)]
        for obj in [module, *members]:
            for paragraph in (inspect.getdoc(obj) or "").split("\n\n"):
                text = " ".join(paragraph.split())
                if len(text) >= 200:
                    paragraphs.setdefault(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(list(paragraphs)[: 8 * samples]) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------- one method, in its own process


def child(args) -> None:
    import torch
    from lm_eval.api.instance import Instance

    from lm_eval_bias.model_wrappers.quantized_hf import QuantizedHFLM
    from lm_eval_bias.model_wrappers.quantizers.auto import QUANTIZERS
    from lm_eval_bias.model_wrappers.quantizers.base import Quantizer

    torch.set_num_threads(args.threads)
    method, settings = METHODS[args.method]
    settings = {
        **settings,
        **(
            {"calibration": args.calibration, "calibration_samples": str(args.gptq_samples)}
            if method in CALIBRATED
            else {}
        ),
    }
    quantizer_class = QUANTIZERS[method]
    hook_seconds = []
    original = quantizer_class.postprocess_model
    overrides_postprocess = original is not Quantizer.postprocess_model

    def timed(self, model):
        start = time.perf_counter()
        try:
            return original(self, model)
        finally:
            hook_seconds.append(time.perf_counter() - start)

    quantizer_class.postprocess_model = timed
    start = time.perf_counter()
    lm = QuantizedHFLM(pretrained=args.model, device="cpu", batch_size=args.batch_size, quantization=method, **settings)
    load_seconds = time.perf_counter() - start

    sentences = [s for pair in crows_pairs(args.limit) for s in pair]
    requests = [Instance("loglikelihood", {}, ("", s), i) for i, s in enumerate(sentences)]
    start = time.perf_counter()
    scores = [logprob for logprob, _ in lm.loglikelihood(requests, disable_tqdm=True)]
    score_seconds = time.perf_counter() - start
    info = lm.get_model_info()
    print(
        json.dumps(
            {
                "load_s": load_seconds,
                "hook_s": hook_seconds[0] if (hook_seconds and overrides_postprocess) else None,
                "score_s": score_seconds,
                "scores": scores,
                "bytes": storage_bytes(lm.model),
                "model_bytes_after": info["quantization"]["model_bytes_after"],
                "bytes_fp32": info["quantization"]["model_bytes_before"],
                "quantization": info["quantization"],
                "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            },
            default=str,
        )
    )


# --------------------------------------------------------------- the sweep


def run_method(args, method: str, env: dict[str, str]) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        "--method",
        method,
        "--model",
        str(args.model),
        "--batch-size",
        str(args.batch_size),
        "--threads",
        str(args.threads),
        "--gptq-samples",
        str(args.gptq_samples),
    ]
    command += ["--limit", str(args.limit)] if args.limit else []
    command += ["--calibration", str(args.calibration)] if args.calibration else []
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return {"error": lines[-1][:160] if lines else f"exit code {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def effective_bits(quantization: dict) -> str:
    """Measured effective bits, else the nominal ones (starred when the method packs weights we do not measure)."""
    bits, nominal = quantization["effective_bits_per_weight"], quantization["weight_bits"]
    if isinstance(bits, (int, float)):
        return f"{bits:.2f}"
    return "?" if nominal is None else f"{nominal}" + ("" if quantization["method"] == "none" else "*")


def table(results: dict[str, dict], pairs: int) -> str:
    baseline = results.get("none", {}).get("scores")
    fp32_load = results.get("none", {}).get("load_s")
    header = (
        f"{'method':<17}{'quantize_s':>11}{'sent/s':>9}{'MB':>9}{'packed MB':>11}{'bits/w':>8}{'|d score|':>11}"
        f"{'stereo %':>10}{'sparse %':>10}"
    )
    rows = [header, "-" * len(header)]
    for name, result in results.items():
        if "error" in result:
            rows.append(f"{name:<17}  not run: {result['error']}")
            continue
        quantization = result["quantization"]
        if quantization["method"] in RECORDED_TIME:  # the run that filled the cache
            quantize = quantization["details"].get(RECORDED_TIME[quantization["method"]])
        elif result["hook_s"] is not None:
            quantize = result["hook_s"]
        elif name != "none" and fp32_load is not None:
            quantize = max(result["load_s"] - fp32_load, 0.0)
        else:
            quantize = 0.0
        scores = result["scores"]
        drift = sum(abs(a - b) for a, b in zip(scores, baseline)) / len(scores) if baseline else float("nan")
        stereo = 100 * sum(scores[2 * i] > scores[2 * i + 1] for i in range(pairs)) / pairs
        packed = quantization["details"].get("packed_model_bytes", result["bytes"])
        rows.append(
            f"{name:<17}{quantize:>11.1f}{len(scores) / result['score_s']:>9.1f}{result['bytes'] / 1e6:>9.1f}"
            f"{packed / 1e6:>11.1f}{effective_bits(quantization):>8}{drift:>11.4f}{stereo:>10.1f}"
            f"{100 * quantization['details'].get('measured_sparsity_pruned_layers', 0.0):>10.1f}"
        )
    return "\n".join(rows)


def parent(args) -> None:
    pairs = len(crows_pairs(args.limit))
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="compression_sweep_"))
    source = args.model
    copies = Path(args.gptq_cache) / "model_copies" if args.gptq_cache else work
    args.model = clean_model_copy(source, copies / Path(source).resolve().name)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "LM_EVAL_BIAS_CACHE": str(args.gptq_cache or work / "cache"),
    }
    methods = args.methods or list(METHODS)
    if any(METHODS[m][0] in CALIBRATED for m in methods) and not args.calibration:
        args.calibration = stdlib_calibration(args.gptq_samples, work / "calibration.txt")
    results = {}
    for method in methods:
        start = time.perf_counter()
        results[method] = run_method(args, method, env)
        print(f"[{method}: {time.perf_counter() - start:.0f} s]", flush=True)
    print(
        f"\nCrowS-Pairs, first {pairs} pairs ({2 * pairs} sentences), {Path(source).name}, CPU, "
        f"batch size {args.batch_size}, {args.threads} threads; fp32 size "
        f"{results.get('none', {}).get('bytes_fp32', 0) / 1e6:.1f} MB; load average {load_before:.1f} -> "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(table(results, pairs))
    print(
        "MB: tensors in memory; packed MB: rtn's fake-quant weights counted at their effective bits.\n"
        "* nominal bits (the method does not report them)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="causal LM folder")
    parser.add_argument("--limit", type=int, help="first N CrowS-Pairs pairs only")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 1)))
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), help="a subset, in this order")
    parser.add_argument("--calibration", help="GPTQ calibration text file (default: stdlib docstring paragraphs)")
    parser.add_argument("--gptq-samples", type=int, default=128, help="GPTQ calibration samples")
    parser.add_argument("--gptq-cache", help="GPTQ checkpoint cache (default: a fresh temporary folder)")
    parser.add_argument("--json", help="also write every result (scores included) here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--method", choices=list(METHODS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    child(args) if args.child else parent(args)


if __name__ == "__main__":
    main()
