#!/usr/bin/env bash
# Issue 30, item 3: ours against the stock CrowS-Pairs formulation as whole `lm_eval` processes on a
# GPU, with Gemma-3-270M's shapes and random weights (its 1 GB of weights cannot travel to the device
# machine; the 262,144-row head and the body's shapes are what the timings depend on), two
# alternating rounds, then whether scores move with the batch size there. See docs/benchmarks.md,
# "Whole lm_eval runs on a GPU (prepared)".
#
#   here, once:     GEMMA_DIR=/path/to/gemma-3-270m LM_EVAL_BIAS_DATA_DIR=/path/to/data \
#                     bash benchmarks/gpu_whole_run.sh prepare
#                   (Gemma's config and tokenizer, 33 MB, and the CrowS-Pairs CSV into gpu_inputs/,
#                   which git ignores; wheels the device lacks go in gpu_inputs/wheels/)
#   on the device:  bash benchmarks/gpu_whole_run.sh run      (device tool: carry ["gpu_inputs"],
#                   timeout_s 560; everything is written under $OUT)
set -euo pipefail
PYTHON=${PYTHON:-python}
INPUTS=gpu_inputs

prepare() {
    : "${GEMMA_DIR:?set GEMMA_DIR to the Gemma-3-270M folder}" "${LM_EVAL_BIAS_DATA_DIR:?set LM_EVAL_BIAS_DATA_DIR}"
    mkdir -p "$INPUTS/gemma3-270m" "$INPUTS/data/crows_pairs"
    for f in config.json generation_config.json tokenizer.json tokenizer_config.json; do
        [ -f "$GEMMA_DIR/$f" ] && cp "$GEMMA_DIR/$f" "$INPUTS/gemma3-270m/"
    done
    cp "$LM_EVAL_BIAS_DATA_DIR/crows_pairs/crows_pairs_anonymized.csv" "$INPUTS/data/crows_pairs/"
    du -sh "$INPUTS"  # the device tool carries at most 64 MiB
}

run() {
    OUT=${OUT:-gpu_out}
    mkdir -p "$OUT"
    if ! "$PYTHON" -c "import lm_eval, datasets" 2>/dev/null && ls "$INPUTS"/wheels/*.whl >/dev/null 2>&1; then
        "$PYTHON" -m pip install --quiet --no-index --find-links "$INPUTS/wheels" "$INPUTS"/wheels/*.whl
    fi
    # the package and its lm_eval_bias.pth (the import hook that registers quantized_hf and our tasks),
    # unless this checkout's package is installed already
    if ! "$PYTHON" -c "import os, sys, lm_eval_bias; sys.exit(not lm_eval_bias.__file__.startswith(os.getcwd()))"; then
        "$PYTHON" -m pip install --quiet --no-deps --no-index --no-build-isolation -e .
    fi
    export LM_EVAL_BIAS_DATA_DIR=$PWD/$INPUTS/data HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
    local device=${DEVICE:-cuda} limit=()  # DEVICE=cpu LIMIT=2: a smoke test of this script without a GPU
    [ -n "${LIMIT:-}" ] && limit=(--pairs "$LIMIT")
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/device.txt"
    "$PYTHON" benchmarks/tiny_models.py "$OUT/models" --random-copy-of "$INPUTS/gemma3-270m" > "$OUT/models.log" 2>&1
    local model=$OUT/models/gemma3-270m-random
    # two alternating rounds, ours/stock per round and the host's load (target on a GPU: <= 0.8)
    "$PYTHON" benchmarks/whole_run_overhead.py --regimes gemma --gemma "$model" --device "$device" --rounds 2 \
        --work "$OUT/whole_run" "${limit[@]}" 2>&1 | tee "$OUT/whole_run.txt"
    # the same 200 pairs at batch sizes 8 and 32 (and 8 again, and the CPU) against an fp64 reference
    "$PYTHON" benchmarks/accelerator_scores.py --model "$model" --device "$device" --limit "${LIMIT:-200}" \
        --batch-sizes 8 32 \
        2>&1 | tee "$OUT/batch_size_scores.txt"
}

case "${1:-}" in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: bash benchmarks/gpu_whole_run.sh prepare|run" >&2; exit 2 ;;
esac
