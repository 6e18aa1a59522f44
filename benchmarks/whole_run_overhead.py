"""Whole `lm_eval` processes, ours against the stock formulation: what a user waits for on the command line.

    LM_EVAL_BIAS_DATA_DIR=/path/to/data GEMMA_DIR=/path/to/gemma-3-270m \
      python benchmarks/whole_run_overhead.py [--regimes tiny gemma] [--rounds 2] [--pairs N]
        [--tiny-model DIR] [--device cpu|cuda] [--profile DIR]

Two regimes: `tiny` (a random 2-layer GPT-NeoX that `tiny_models.py` writes, whose forward is
nearly free, so the time is the harness's and ours around it; written to a temporary folder
unless --tiny-model names one) and `gemma` ($GEMMA_DIR, or --gemma). In each round of each
regime two `python -m lm_eval run` subprocesses run one after the other, whole CrowS-Pairs file,
--batch_size 32, dtype float32, lm-eval's default --bootstrap_iters, results written with
--output_path:

- ours: `--model quantized_hf --tasks crows_pairs_bias` (9 subtasks and their group);
- stock: `--model hf` on lm-eval's own crows_pairs_english YAML pointed at the same CSV
  (`crows_pairs_speed.stock_task_dir`), with lm-eval-bias's start-up hook off
  (LM_EVAL_BIAS_DISABLE_HOOK=1): lm-eval as a user without this package runs it.
  --stock-with-plugin leaves the hook on (then stock too reads lm-eval's task index from the cache
  that `lm_eval_bias.task_index_cache` keeps).

Before the rounds one `TaskManager()` makes sure that cache is built, as it is for every run after
a user's first.

The order alternates (ours first in odd rounds, stock first in even ones), so a drift of the
host's speed falls on both. Each line prints both wall times, ours/stock and the load average
(os.getloadavg(), 1 minute) before and after the pair; the last lines give ours/stock per
regime against the targets (tiny <= 0.9, gemma <= 0.7). --profile DIR runs every process
under cProfile (slower; for the breakdown, not for the ratios) and writes DIR/<regime>-<variant>-<round>.prof.
--pairs N scores about N pairs (the first of every bias type, in proportion) in both, for iterating.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from crows_pairs_speed import STOCK_TASK, limited_data_dir, stock_task_dir  # noqa: E402

TARGETS = {"tiny": 0.9, "gemma": 0.7}  # ours/stock at most; on a GPU (--device cuda) the gemma target is 0.8


# phase -> the functions whose cumulative time it is ("path suffix:function"); what is left of the
# process's total is start-up: the interpreter, imports and argument parsing
PHASES = {
    "index lm-eval's task YAMLs (TaskManager)": ["lm_eval/tasks/manager.py:__init__"],
    "load the model": ["lm_eval/api/model.py:create_from_arg_obj", "lm_eval/api/model.py:create_from_arg_string"],
    "build the tasks (data)": ["lm_eval/tasks/manager.py:load"],
    "build the requests": ["lm_eval/api/task.py:build_all_requests"],
    "score (sorting, batches, forwards)": ["lm_eval/api/model.py:loglikelihood"],
    "per-document metrics (process_results)": ["process_results<lm_eval/evaluator.py:evaluate"],
    "aggregate metrics and stderrs": ["lm_eval/evaluator_utils.py:_process_results"],
    "  of which lm-eval's bootstraps": ["lm_eval/api/metrics.py:bootstrap_stderr"],
    "environment info for the results": ["lm_eval/loggers/utils.py:add_env_info"],
    "print the tables": ["lm_eval/utils.py:make_table"],
    "write the results": [
        "lm_eval/loggers/evaluation_tracker.py:save_results_aggregated",
        "lm_eval/loggers/evaluation_tracker.py:save_results_samples",
    ],
}


def phase_seconds(profile: Path) -> dict[str, float]:
    """Seconds per phase of PHASES in a cProfile of one whole `lm_eval` process, and its start-up."""
    import pstats

    stats = pstats.Stats(str(profile)).stats
    out = {}
    for phase, targets in PHASES.items():
        total = 0.0
        for target in targets:
            function, _, caller = target.partition("<")
            where, _, name = function.rpartition(":")
            for (path, _, func), (_, _, _, cumulative, callers) in stats.items():
                if func != name or not path.endswith(where):
                    continue
                if not caller:
                    total += cumulative
                    continue
                caller_where, _, caller_name = caller.rpartition(":")
                total += sum(
                    entry[3]
                    for (c_path, _, c_func), entry in callers.items()
                    if c_func == caller_name and c_path.endswith(caller_where)
                )
        out[phase] = total
    whole = max(cumulative for (_, _, func), (_, _, _, cumulative, _) in stats.items() if func == "<module>")
    out["start-up and the rest (interpreter, imports, CLI)"] = whole - sum(
        v for k, v in out.items() if not k.startswith(" ")
    )
    out["whole process"] = whole
    return out


def print_phases(profiles: list[Path]) -> None:
    table = {f"{path.parent.parent.name}/{path.stem}"[-22:]: phase_seconds(path) for path in profiles}
    print("seconds per phase (cProfile; its clock: --profile-timer):\n" + " " * 52 + "".join(f"{n:>23}" for n in table))
    for phase in next(iter(table.values()), {}):
        print(f"{phase:52}" + "".join(f"{t[phase]:23.2f}" for t in table.values()))


def tiny_model(folder: Path) -> Path:
    """The random GPT-NeoX of tiny_models.py in ``folder`` (written there first if absent)."""
    model = folder / "tiny-gpt-neox"
    if not (model / "config.json").exists():
        subprocess.run([sys.executable, str(Path(__file__).parent / "tiny_models.py"), str(folder)], check=True)
    return model


# `python -c PROFILED OUT TIMER -m lm_eval ...`: lm_eval's __main__ under cProfile with a wall-clock or a
# CPU-time timer (this process's CPU only: lm-eval's bootstrap workers are other processes)
PROFILED = (
    "import cProfile, runpy, sys, time; out, timer = sys.argv[1:3]; sys.argv = ['lm_eval', *sys.argv[5:]]; "
    "profile = cProfile.Profile(time.process_time if timer == 'cpu' else time.perf_counter)\n"
    "try:\n    profile.runcall(runpy.run_module, 'lm_eval', run_name='__main__', alter_sys=True)\n"
    "finally:\n    profile.dump_stats(out)"
)


def command(variant: str, model: Path, args, include: Path, out: Path, profile: Path | None) -> list[str]:
    python = [sys.executable] + (["-c", PROFILED, str(profile), args.profile_timer] if profile else [])
    common = [
        "--model_args",
        f"pretrained={model},dtype=float32",
        "--batch_size",
        str(args.batch_size),
        "--device",
        args.device,
        "--output_path",
        str(out),
    ]
    if variant == "ours":
        return [*python, "-m", "lm_eval", "run", "--model", "quantized_hf", "--tasks", "crows_pairs_bias", *common]
    return [
        *python,
        "-m",
        "lm_eval",
        "run",
        "--model",
        "hf",
        "--tasks",
        STOCK_TASK,
        "--include_path",
        str(include),
        *common,
    ]


def timed(argv: list[str], log: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    with log.open("w") as out:
        finished = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    elapsed = time.perf_counter() - start
    if finished.returncode != 0:
        sys.exit(f"failed ({finished.returncode}): {' '.join(argv)}\n{log.read_text()[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regimes", nargs="+", choices=sorted(TARGETS), default=["tiny", "gemma"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--pairs", type=int, default=None, help="about N pairs, every bias type in proportion (iterating)"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tiny-model", type=Path, default=None, help="folder holding tiny-gpt-neox")
    parser.add_argument("--gemma", default=os.environ.get("GEMMA_DIR"), help="default: $GEMMA_DIR")
    parser.add_argument("--profile", type=Path, default=None, help="write a cProfile of every process here")
    parser.add_argument("--profile-timer", choices=("wall", "cpu"), default="wall", help="cProfile's clock")
    parser.add_argument("--breakdown", type=Path, nargs="+", help="only print the phases of these .prof files")
    parser.add_argument("--work", type=Path, default=None, help="logs and results (default: a temporary folder)")
    parser.add_argument(
        "--stock-with-plugin",
        action="store_true",
        help="run stock with lm-eval-bias's start-up hook loaded (default: lm-eval as shipped, the hook off)",
    )
    args = parser.parse_args()
    if args.breakdown:
        return print_phases(args.breakdown)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    work = args.work or Path(tempfile.mkdtemp(prefix="whole_run_"))
    work.mkdir(parents=True, exist_ok=True)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    if args.pairs:  # both variants read the same smaller CSV
        os.environ["LM_EVAL_BIAS_DATA_DIR"] = limited_data_dir(args.pairs)
    include = stock_task_dir()
    models = {}
    if "tiny" in args.regimes:
        models["tiny"] = tiny_model(args.tiny_model or work / "models")
    if "gemma" in args.regimes:
        if not args.gemma:
            sys.exit("the gemma regime needs --gemma DIR or $GEMMA_DIR")
        models["gemma"] = Path(args.gemma)
    environments = {"ours": dict(os.environ), "stock": dict(os.environ)}
    if not args.stock_with_plugin:  # lm-eval as a user without lm-eval-bias runs it
        environments["stock"]["LM_EVAL_BIAS_DISABLE_HOOK"] = "1"
    # lm-eval's task index, as a user's every run after the first finds it (lm_eval_bias.task_index_cache)
    subprocess.run([sys.executable, "-c", "from lm_eval.tasks import TaskManager; TaskManager()"], check=True)
    print(
        f"work folder {work}; {os.cpu_count()} CPUs; device {args.device}; batch size {args.batch_size}; "
        f"stock {'with' if args.stock_with_plugin else 'without'} the lm-eval-bias hook"
    )
    ratios: dict[str, list[float]] = {regime: [] for regime in models}
    for regime, model in models.items():
        for round_ in range(1, args.rounds + 1):
            order = ("ours", "stock") if round_ % 2 else ("stock", "ours")
            load_before, wall = os.getloadavg()[0], {}
            for variant in order:
                tag = f"{regime}-{variant}-{round_}"
                profile = args.profile / f"{tag}.prof" if args.profile else None
                argv = command(variant, model, args, include, work / tag, profile)
                wall[variant] = timed(argv, work / f"{tag}.log", environments[variant])
            ratio = wall["ours"] / wall["stock"]
            ratios[regime].append(ratio)
            print(
                f"{regime} round {round_} ({' then '.join(order)}): ours {wall['ours']:.1f} s, "
                f"stock {wall['stock']:.1f} s, ours/stock {ratio:.2f}; "
                f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after",
                flush=True,
            )
    if args.profile:
        print_phases(sorted(args.profile.glob("*.prof")))
    for regime, values in ratios.items():
        target = 0.8 if regime == "gemma" and args.device != "cpu" else TARGETS[regime]
        met = all(r <= target for r in values)
        print(
            f"{regime}: ours/stock {', '.join(f'{r:.2f}' for r in values)} "
            f"(target <= {target}: {'met' if met else 'not met'})"
        )


if __name__ == "__main__":
    main()
