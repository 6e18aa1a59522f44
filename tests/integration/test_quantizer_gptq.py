"""quantization=gptq: gptqmodel on a tiny model on CPU, the on-disk cache, GPTQ checkpoints, calibration data."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from fixtures.corpus import CORPUS
from fixtures.harness import corpus_sentence_scores as sentence_scores
from lm_eval_bias.model_wrappers.quantizers.auto import get_quantizer
from lm_eval_bias.model_wrappers.quantizers.base import QuantizationError
from lm_eval_bias.model_wrappers.quantizers.calibration import calibration_texts
from lm_eval_bias.model_wrappers.quantizers.gptq import GPTQ

HAVE_GPTQ = all(importlib.util.find_spec(m) is not None for m in ("gptqmodel", "optimum"))
needs_gptq = pytest.mark.skipif(not HAVE_GPTQ, reason="gptqmodel / optimum are not installed (the [gptq] extra)")
QUANTIZE_TIME_LIMIT_S = 300
# group_size 32: also the smallest group the CPU int4pack kernel accepts (gptqmodel 7.6's pick under kernel=auto)
SETTINGS = {"bits": 4, "group_size": 32, "calibration_samples": 16, "seed": 0}


@pytest.fixture(scope="module")
def calibration_file(tmp_path_factory):
    """Lines of three fixture sentences each: long enough (> 10 tokens) for gptqmodel to keep."""
    path = tmp_path_factory.mktemp("calibration") / "calibration.txt"
    path.write_text("\n".join(" ".join(CORPUS[i : i + 3]) for i in range(0, len(CORPUS), 3)) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def gptq_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("lm_eval_bias_cache"))


@pytest.fixture(scope="module")
def first_run(tiny_gpt_neox_dir, calibration_file, gptq_cache):
    """Quantize once, in a subprocess under a time limit: fills the cache, returns the record."""
    script = textwrap.dedent(
        """
        import json, sys
        from lm_eval_bias.model_wrappers.quantized_hf import QuantizedHFLM
        lm = QuantizedHFLM(device="cpu", quantization="gptq", **json.loads(sys.argv[1]))
        print(json.dumps(lm.get_model_info()["quantization"]))
        """
    )
    model_args = {
        "pretrained": tiny_gpt_neox_dir,
        "calibration": calibration_file,
        **{k: str(v) for k, v in SETTINGS.items()},
    }
    env = {**os.environ, "LM_EVAL_BIAS_CACHE": gptq_cache, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    try:
        done = subprocess.run(
            [sys.executable, "-c", script, json.dumps(model_args)],
            env=env,
            capture_output=True,
            text=True,
            timeout=QUANTIZE_TIME_LIMIT_S,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"GPTQ of a 2-layer model with hidden size 32 took over {QUANTIZE_TIME_LIMIT_S} s on CPU")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _wrapper(pretrained, **settings):
    from lm_eval_bias.model_wrappers.quantized_hf import QuantizedHFLM

    return QuantizedHFLM(pretrained=pretrained, device="cpu", batch_size=8, quantization="gptq", **settings)


@needs_gptq
def test_quantize_on_cpu_then_hit_the_cache(first_run, tiny_gpt_neox_dir, calibration_file, gptq_cache, monkeypatch):
    details, settings = first_run["details"], first_run["settings"]
    assert details["cache"] == "miss"
    assert details["checkpoint"].startswith(os.path.join(gptq_cache, "gptq"))
    assert settings["bits"] == 4 and settings["group_size"] == SETTINGS["group_size"] and settings["desc_act"] is False
    assert first_run["weight_bits"] == 4
    assert details["calibration_samples_used"] == 16 and details["quantize_seconds"] > 0
    # 4-bit codes + per group an fp16 scale and a 4-bit zero + an int32 group index per input column
    per_group = 20 / SETTINGS["group_size"]
    assert 4 + per_group < first_run["effective_bits_per_weight"] < 4 + per_group + 32 / 32 + 1e-9

    monkeypatch.setenv("LM_EVAL_BIAS_CACHE", gptq_cache)
    monkeypatch.setattr(GPTQ, "_quantize", lambda *args: pytest.fail("quantized the same model and settings twice"))
    loaded = []
    from_pretrained = AutoModelForCausalLM.from_pretrained
    monkeypatch.setattr(
        AutoModelForCausalLM,
        "from_pretrained",
        lambda path, *a, **k: (loaded.append(str(path)), from_pretrained(path, *a, **k))[1],
    )
    lm = _wrapper(tiny_gpt_neox_dir, calibration=calibration_file, **{k: str(v) for k, v in SETTINGS.items()})
    assert loaded == [first_run["details"]["checkpoint"]]  # the full-precision model is never loaded on a cache hit
    monkeypatch.undo()
    monkeypatch.setenv("LM_EVAL_BIAS_CACHE", gptq_cache)
    record = lm.get_model_info()["quantization"]
    assert record["details"]["cache"] == "hit"
    assert record["details"]["checkpoint"] == first_run["details"]["checkpoint"]
    assert record["settings"]["kernel"] == "gptq_torch"
    assert record["model_bytes_after"] < record["model_bytes_before"]

    reference = AutoModelForCausalLM.from_pretrained(tiny_gpt_neox_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt_neox_dir)
    quantized_scores = sentence_scores(lm.model, tokenizer)
    change = (quantized_scores - sentence_scores(reference, tokenizer)).abs()
    assert all(math.isfinite(s) for s in quantized_scores.tolist())
    assert 0 < change.max().item() < 0.5

    by_size = {size: sentence_scores(lm.model, tokenizer, batch_size=size) for size in (1, 8, 32)}
    assert torch.allclose(by_size[8], by_size[1], rtol=0, atol=1e-5)
    assert torch.allclose(by_size[32], by_size[1], rtol=0, atol=1e-5)


@needs_gptq
def test_cpu_layers_keep_their_dequantized_weights(
    first_run, tiny_gpt_neox_dir, calibration_file, gptq_cache, monkeypatch
):
    """Scores with the kept weights equal scores that dequantize in every forward (the cache switched off)."""
    from lm_eval_bias.model_wrappers.quantizers.gptq import gptq_layers

    monkeypatch.setenv("LM_EVAL_BIAS_CACHE", gptq_cache)
    lm = _wrapper(tiny_gpt_neox_dir, calibration=calibration_file, **{k: str(v) for k, v in SETTINGS.items()})
    assert lm.get_model_info()["quantization"]["details"]["dequantized_weight_cache"] is True
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt_neox_dir)
    kept = sentence_scores(lm.model, tokenizer)
    layers = gptq_layers(lm.model)
    assert all(len(layer._cached_weights) == 1 for layer in layers)  # one fp32 copy each, made on first use
    for layer in layers:
        layer.enable_weight_cache(False)
        layer._cached_weights.clear()
    assert torch.equal(sentence_scores(lm.model, tokenizer), kept)


@needs_gptq
def test_load_an_already_quantized_checkpoint(first_run, tiny_gpt_neox_dir, calibration_file, gptq_cache, monkeypatch):
    monkeypatch.setenv("LM_EVAL_BIAS_CACHE", gptq_cache)
    checkpoint = first_run["details"]["checkpoint"]
    lm = _wrapper(checkpoint)
    info = lm.get_model_info()["quantization"]
    assert info["details"]["cache"] == "pre-quantized checkpoint"
    settings = info["settings"]
    assert (settings["bits"], settings["group_size"], settings["desc_act"]) == (4, SETTINGS["group_size"], False)
    assert lm.model.dtype == torch.float32  # non-GPTQ parts are not left in the checkpoint's bf16

    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt_neox_dir)
    on_the_fly = _wrapper(tiny_gpt_neox_dir, calibration=calibration_file, **{k: str(v) for k, v in SETTINGS.items()})
    full_precision = AutoModelForCausalLM.from_pretrained(tiny_gpt_neox_dir)
    assert lm.get_model_info()["quantization"]["model_bytes_before"] == 4 * full_precision.num_parameters()
    assert on_the_fly.get_model_info()["quantization"]["model_bytes_before"] == 4 * full_precision.num_parameters()
    assert torch.allclose(
        sentence_scores(lm.model, tokenizer), sentence_scores(on_the_fly.model, tokenizer), rtol=0, atol=1e-6
    )

    with pytest.raises(QuantizationError, match="bits=8"):
        _wrapper(checkpoint, bits="8")


# --------------------------------------------------------------- the cache key (no quantization run)


class _Stop(Exception):
    pass


def test_cache_key_covers_model_revision_and_every_setting(tiny_gpt_neox_dir, calibration_file, tmp_path, monkeypatch):
    monkeypatch.setenv("LM_EVAL_BIAS_CACHE", str(tmp_path))
    targets = []

    def record(self, source, checkpoint, key_fields, device):
        targets.append(checkpoint)
        raise _Stop

    monkeypatch.setattr(GPTQ, "_quantize", record)
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt_neox_dir)
    other_calibration = tmp_path / "other.txt"
    other_calibration.write_text(open(calibration_file).read() + "One more line of calibration text for the key.\n")
    base = {"calibration": calibration_file, **SETTINGS}
    variants = [
        base,
        base,
        {**base, "bits": 3},
        {**base, "group_size": 16},
        {**base, "desc_act": True},
        {**base, "calibration": str(other_calibration)},
        {**base, "calibration_samples": 8},
        {**base, "seed": 1},
    ]
    for settings in variants:
        with pytest.raises(_Stop):
            get_quantizer("gptq", **settings).postprocess_model(model)
    quantizer = get_quantizer("gptq", **base)
    quantizer.update_load_kwargs({"revision": "v2"})
    with pytest.raises(_Stop):
        quantizer.postprocess_model(model)
    with pytest.raises(_Stop):  # the kernel is chosen when loading: the same quantized checkpoint
        get_quantizer("gptq", **base, kernel="auto").postprocess_model(model)
    assert targets[0] == targets[1] == targets[-1]
    assert len(set(targets)) == len(targets) - 2
    assert all(str(t).startswith(os.path.join(str(tmp_path), "gptq")) for t in targets)


# --------------------------------------------------------------- options, calibration, missing packages


def test_options_arrive_as_strings():
    settings = get_quantizer(
        "gptq", bits="3", group_size="-1", desc_act="true", calibration="c.txt", calibration_samples="64", seed="7"
    ).settings
    assert settings == {
        "bits": 3,
        "group_size": -1,
        "desc_act": True,
        "calibration": "c.txt",
        "calibration_samples": 64,
        "seed": 7,
        "kernel": "gptq_torch",
    }
    assert get_quantizer("gptq").settings["group_size"] == 128
    for bad in ({"bits": "5"}, {"group_size": "0"}, {"desc_act": "perhaps"}):
        with pytest.raises(QuantizationError):
            get_quantizer("gptq", **bad)


def test_calibration_texts_are_seeded_and_long_enough(tiny_gpt_neox_dir, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt_neox_dir)
    lines = [" ".join(CORPUS[i : i + 3]) for i in range(0, len(CORPUS), 3)] + ["", "Too short."]
    text_file = tmp_path / "calibration.txt"
    text_file.write_text("\n".join(lines))
    jsonl_file = tmp_path / "calibration.jsonl"
    jsonl_file.write_text("\n".join(json.dumps({"text": line}) for line in lines))
    first = calibration_texts(str(text_file), 5, seed=0, tokenizer=tokenizer)
    assert first == calibration_texts(str(text_file), 5, seed=0, tokenizer=tokenizer)
    assert first == calibration_texts(str(jsonl_file), 5, seed=0, tokenizer=tokenizer)
    assert first != calibration_texts(str(text_file), 5, seed=1, tokenizer=tokenizer)
    everything = calibration_texts(str(text_file), 1000, seed=0, tokenizer=tokenizer)
    assert "Too short." not in everything and len(everything) == len(lines) - 2


def test_unreachable_hub_calibration_says_what_to_pass(tiny_gpt_neox_dir, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt_neox_dir)
    with pytest.raises(QuantizationError, match="calibration=PATH"):
        calibration_texts("no-such-user/no-such-dataset", 4, seed=0, tokenizer=tokenizer)


@pytest.mark.parametrize("missing", ["gptqmodel", "optimum"])
def test_missing_packages_name_the_install(missing, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a, **k: None if name == missing else real(name, *a, **k)
    )
    with pytest.raises(QuantizationError, match=r"pip install 'lm-eval-bias\[gptq\]' 'torch=="):
        get_quantizer("gptq").validate_environment("cpu")


@needs_gptq
def test_unknown_kernel_names_the_choices():
    with pytest.raises(QuantizationError, match=r"unknown kernel='marlin-ish'; choose one of .*gptq_torch"):
        get_quantizer("gptq", kernel="marlin-ish").validate_environment("cpu")
