"""Magnitude, Wanda and SparseGPT pruning: masks against straightforward references on one layer, then
measured sparsity, N:M structure, batch invariance, dose-response, cache and bad options on tiny LMs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from fixtures.corpus import CORPUS
from fixtures.harness import corpus_sentence_scores as sentence_scores
from lm_eval_bias.model_wrappers.quantizers.auto import get_quantizer
from lm_eval_bias.model_wrappers.quantizers.base import QuantizationError
from lm_eval_bias.model_wrappers.quantizers.sparsegpt import InputHessian, SparseGPT

METHODS = ("magnitude", "wanda", "sparsegpt")

# --------------------------------------------------------------- references on one layer


def reference_lowest(scores: np.ndarray, count: int) -> np.ndarray:
    """True at the `count` smallest entries, by threshold (the scores below are distinct)."""
    if count == 0:
        return np.zeros_like(scores, dtype=bool)
    return scores <= np.sort(scores.flatten())[count - 1]


def reference_magnitude(weight: np.ndarray, sparsity: float) -> np.ndarray:
    return np.where(reference_lowest(np.abs(weight), round(sparsity * weight.size)), 0.0, weight)


def reference_wanda(weight: np.ndarray, inputs: np.ndarray, sparsity: float) -> np.ndarray:
    """|W_ij| * ||X_j||_2, the lowest round(s * in) of each row zeroed (Sun et al., 2024, eq. 1)."""
    out = weight.copy()
    norms = np.array([np.sqrt(sum(float(x) ** 2 for x in inputs[:, j])) for j in range(weight.shape[1])])
    for row in range(weight.shape[0]):
        scores = np.abs(weight[row]) * norms
        out[row][reference_lowest(scores, round(sparsity * weight.shape[1]))] = 0.0
    return out


def reference_n_of_m(scores: np.ndarray, weight: np.ndarray, n: int, m: int) -> np.ndarray:
    out = weight.copy()
    for row in range(weight.shape[0]):
        for start in range(0, weight.shape[1], m):
            order = sorted(range(start, start + m), key=lambda j: scores[row, j])
            out[row, order[: m - n]] = 0.0
    return out


def _layer(rows=12, columns=32, tokens=200, seed=0):
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(rows, columns, generator=generator)
    inputs = torch.randn(tokens, columns, generator=generator) * torch.linspace(0.1, 3.0, columns)  # uneven features
    return weight, inputs


def _prune(method: str, weight, inputs, **options):
    quantizer = get_quantizer(method, **options)
    statistic = quantizer.new_statistic(None)
    if statistic is not None:
        statistic.add(inputs)
    return quantizer.prune_weight(weight.clone(), statistic)


@pytest.mark.parametrize("sparsity", [0.25, 0.5, 0.9])
def test_magnitude_matches_reference(sparsity):
    weight, _ = _layer()
    np.testing.assert_array_equal(
        _prune("magnitude", weight, None, sparsity=sparsity).numpy(), reference_magnitude(weight.numpy(), sparsity)
    )


@pytest.mark.parametrize("sparsity", [0.25, 0.5, 0.9])
def test_wanda_matches_reference(sparsity):
    weight, inputs = _layer()
    got = _prune("wanda", weight, inputs, sparsity=sparsity).numpy()
    np.testing.assert_array_equal(got, reference_wanda(weight.numpy(), inputs.double().numpy(), sparsity))
    assert not np.array_equal(got, reference_magnitude(weight.numpy(), sparsity))  # the activations matter


@pytest.mark.parametrize("structure", ["2:4", "1:4", "4:8"])
def test_n_of_m_matches_reference(structure):
    n, m = map(int, structure.split(":"))
    weight, inputs = _layer()
    w = weight.numpy()
    np.testing.assert_array_equal(
        _prune("magnitude", weight, None, structure=structure).numpy(), reference_n_of_m(np.abs(w), w, n, m)
    )
    norms = np.sqrt((inputs.double().numpy() ** 2).sum(axis=0))
    np.testing.assert_array_equal(
        _prune("wanda", weight, inputs, structure=structure).numpy(), reference_n_of_m(np.abs(w) * norms, w, n, m)
    )


def _output_error(weight, pruned, inputs) -> float:
    return float(((inputs @ weight.t() - inputs @ pruned.t()) ** 2).sum())


@pytest.mark.parametrize("options", [{"sparsity": 0.5}, {"structure": "2:4"}])
def test_sparsegpt_updates_kept_weights_to_cut_the_output_error(options):
    weight, _ = _layer(columns=256)  # two column blocks of 128
    generator = torch.Generator().manual_seed(1)
    mixing = torch.eye(256) + torch.randn(256, 256, generator=generator) / 16  # correlated inputs: OBS has work to do
    inputs = torch.randn(400, 256, generator=generator) @ mixing
    pruned = _prune("sparsegpt", weight, inputs, **options)
    assert (pruned == 0).float().mean().item() == pytest.approx(0.5, abs=1e-9)
    kept = pruned != 0
    assert not torch.equal(pruned[kept], weight[kept])  # OBS updates, unlike Wanda
    wanda = _prune("wanda", weight, inputs, **options)
    assert _output_error(weight, pruned, inputs) < 0.75 * _output_error(weight, wanda, inputs)


def test_sparsegpt_is_obs_for_a_single_pruned_weight():
    """One weight q pruned from a row: SparseGPT's update is the optimal (OBS, Hassibi & Stork) update of the
    columns not yet processed, q..end, with the earlier ones fixed: w_F -= w_q / [H_F^-1]_00 * H_F^-1[:, 0]."""
    weight, inputs = _layer(rows=1, columns=8, tokens=400)
    statistic = InputHessian(None)
    statistic.add(inputs)
    pruned = SparseGPT(sparsity=1 / 8).prune_weight(weight.clone(), statistic).double()[0]
    (q,) = torch.nonzero(pruned == 0)[:, 0].tolist()
    hessian = inputs.double().t() @ inputs.double()
    hessian += 0.01 * hessian.diagonal().mean() * torch.eye(8, dtype=torch.float64)
    inverse = torch.linalg.inv(hessian[q:, q:])
    expected = weight.double()[0].clone()
    expected[q:] -= expected[q] / inverse[0, 0] * inverse[:, 0]
    torch.testing.assert_close(pruned, expected, rtol=0, atol=1e-5)


# --------------------------------------------------------------- options


@pytest.mark.parametrize(
    "method, options, named",
    [
        ("wanda", {"sparsity": "1.5"}, "between 0 and 1"),
        ("wanda", {"sparsity": "half"}, "expected a number"),
        ("magnitude", {"structure": "4:2"}, "N:M with 0 < N < M"),
        ("sparsegpt", {"structure": "2:4", "sparsity": "0.5"}, "not both"),
        ("wanda", {"layers": "mlp("}, "regular expression"),
        ("magnitude", {"calibration": "x.txt"}, "its options: sparsity, structure, layers"),
        ("sparsegpt", {"calibration_samples": "0"}, "positive integer"),
    ],
)
def test_bad_options_get_one_clear_error(method, options, named):
    with pytest.raises(QuantizationError, match=f"quantization={method}") as error:
        get_quantizer(method, **options)
    assert named in str(error.value)


def test_options_arrive_as_strings():
    settings = get_quantizer("wanda", sparsity="0.3", calibration_samples="16", seed="2", layers="mlp").settings
    assert settings == {
        "sparsity": 0.3,
        "structure": None,
        "layers": "mlp",
        "calibration": "Salesforce/wikitext:wikitext-2-raw-v1",
        "calibration_samples": 16,
        "seed": 2,
        "implementation": "ours",
    }
    assert get_quantizer("magnitude", structure=" 2 : 4 ").settings == {
        "sparsity": None,
        "structure": "2:4",
        "layers": None,
    }
    assert get_quantizer("magnitude").settings["sparsity"] == 0.5


# --------------------------------------------------------------- tiny language models


@pytest.fixture(scope="module")
def calibration_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("calibration") / "neutral.txt"
    path.write_text("\n".join(" ".join(CORPUS[i : i + 3]) for i in range(0, len(CORPUS), 3)) + "\n")
    return str(path)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LM_EVAL_BIAS_CACHE", str(tmp_path / "cache"))


def _pruned(model_dir, method, calibration_file, **options):
    from lm_eval_bias.model_wrappers.quantized_hf import QuantizedHFLM

    extra = {} if method == "magnitude" else {"calibration": calibration_file, "calibration_samples": "8"}
    return QuantizedHFLM(pretrained=model_dir, device="cpu", batch_size=8, quantization=method, **extra, **options)


def _block_weights(model):
    return {n: m.weight for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and ".layers." in n}


@pytest.mark.parametrize(
    "method, sparsity",
    [("magnitude", 0.25), ("magnitude", 0.9), ("wanda", 0.5), ("wanda", 0.9), ("sparsegpt", 0.25), ("sparsegpt", 0.5)],
)
def test_measured_sparsity_equals_requested(tiny_llama_dir, calibration_file, method, sparsity):
    lm = _pruned(tiny_llama_dir, method, calibration_file, sparsity=str(sparsity))
    record = lm.get_model_info()["quantization"]
    details = record["details"]
    weights = _block_weights(lm.model)
    zeros = sum(int((w == 0).sum()) for w in weights.values()) / sum(w.numel() for w in weights.values())
    assert details["pruned_layers"] == len(weights) == 14  # 2 blocks x (q, k, v, o, gate, up, down)
    assert details["measured_sparsity_pruned_layers"] == pytest.approx(zeros, abs=1e-6)
    assert abs(zeros - sparsity) <= 0.01
    dense = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    for getter in ("get_output_embeddings", "get_input_embeddings"):  # never pruned
        assert torch.equal(getattr(lm.model, getter)().weight, getattr(dense, getter)().weight)
    total = sum(p.numel() for p in lm.model.parameters())
    model_zeros = sum(int((p == 0).sum()) for p in lm.model.parameters())
    assert details["measured_sparsity_model"] == pytest.approx(model_zeros / total, abs=1e-6)
    assert record["method"] == method and record["settings"]["sparsity"] == sparsity


@pytest.mark.parametrize("method", METHODS)
def test_two_of_four_exactly(tiny_llama_dir, calibration_file, method):
    lm = _pruned(tiny_llama_dir, method, calibration_file, structure="2:4")
    for name, weight in _block_weights(lm.model).items():
        zeros_per_group = (weight.reshape(weight.shape[0], -1, 4) == 0).sum(dim=-1)
        assert bool((zeros_per_group >= 2).all()), name
    assert lm.get_model_info()["quantization"]["details"]["target_sparsity"] == 0.5


def test_layers_option_prunes_only_the_named_layers(tiny_llama_dir, calibration_file):
    lm = _pruned(tiny_llama_dir, "wanda", calibration_file, sparsity="0.5", layers="mlp")
    reference = _block_weights(AutoModelForCausalLM.from_pretrained(tiny_llama_dir))
    for name, weight in _block_weights(lm.model).items():
        assert torch.equal(weight, reference[name]) == (".mlp." not in name), name
    assert lm.get_model_info()["quantization"]["details"]["pruned_layers"] == 6


@pytest.mark.parametrize("method", METHODS)
def test_more_sparsity_moves_scores_more(tiny_gpt_neox_dir, calibration_file, method):
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt_neox_dir)
    dense = sentence_scores(AutoModelForCausalLM.from_pretrained(tiny_gpt_neox_dir).eval(), tokenizer)
    change = {}
    for sparsity in (0.5, 0.9):  # the quantizer alone on a loaded model (no cache)
        model = AutoModelForCausalLM.from_pretrained(tiny_gpt_neox_dir).eval()
        options = {} if method == "magnitude" else {"calibration": calibration_file, "calibration_samples": 8}
        get_quantizer(method, sparsity=sparsity, **options).postprocess_model(model)
        change[sparsity] = (sentence_scores(model, tokenizer) - dense).abs().mean().item()
    assert 0 < change[0.5] < change[0.9]


@pytest.mark.parametrize("method", METHODS)
def test_batch_invariance(tiny_llama_dir, calibration_file, method):
    lm = _pruned(tiny_llama_dir, method, calibration_file, sparsity="0.5")
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    by_size = {size: sentence_scores(lm.model, tokenizer, batch_size=size) for size in (1, 8, 32)}
    assert torch.allclose(by_size[8], by_size[1], rtol=0, atol=1e-5)
    assert torch.allclose(by_size[32], by_size[1], rtol=0, atol=1e-5)


def test_cache_hit_and_precompressed_checkpoint(tiny_llama_dir, calibration_file, monkeypatch):
    from lm_eval_bias.model_wrappers.quantizers.one_shot import OneShotCompression

    first = _pruned(tiny_llama_dir, "wanda", calibration_file, sparsity="0.5")
    details = first.get_model_info()["quantization"]["details"]
    assert details["cache"] == "miss" and details["calibration_samples_used"] == 8
    monkeypatch.setattr(
        OneShotCompression, "_compress", lambda *a: pytest.fail("pruned the same model and settings twice")
    )
    second = _pruned(tiny_llama_dir, "wanda", calibration_file, sparsity="0.5")
    again = second.get_model_info()["quantization"]["details"]
    assert again["cache"] == "hit" and again["checkpoint"] == details["checkpoint"]
    for name, weight in _block_weights(second.model).items():
        assert torch.equal(weight, _block_weights(first.model)[name])
    # the cache folder is an already-pruned checkpoint: loaded as it is, its settings adopted
    from lm_eval_bias.model_wrappers.quantized_hf import QuantizedHFLM

    loaded = QuantizedHFLM(pretrained=details["checkpoint"], device="cpu", quantization="wanda")
    record = loaded.get_model_info()["quantization"]
    assert record["details"]["cache"] == "pre-compressed checkpoint" and record["settings"]["calibration_samples"] == 8
    with pytest.raises(QuantizationError, match="already pruned with other settings: sparsity=0.7"):
        QuantizedHFLM(pretrained=details["checkpoint"], device="cpu", quantization="wanda", sparsity="0.7")
    with pytest.raises(QuantizationError, match="compressed with wanda, not magnitude"):
        QuantizedHFLM(pretrained=details["checkpoint"], device="cpu", quantization="magnitude")


def test_cache_key_covers_settings_and_calibration(tiny_llama_dir, calibration_file, tmp_path):
    first = _pruned(tiny_llama_dir, "wanda", calibration_file, sparsity="0.5")
    other_seed = _pruned(tiny_llama_dir, "wanda", calibration_file, sparsity="0.5", seed="1")
    other_text = tmp_path / "other.txt"
    other_text.write_text(open(calibration_file).read() + "One more neutral line about the weather today.\n")
    other_data = _pruned(tiny_llama_dir, "wanda", str(other_text), sparsity="0.5")
    folders = {lm.get_model_info()["quantization"]["details"]["checkpoint"] for lm in (first, other_seed, other_data)}
    assert len(folders) == 3


def test_calibration_never_on_the_bias_benchmarks(tiny_llama_dir, crows_pairs_fixture_csv, monkeypatch):
    csv = f"{crows_pairs_fixture_csv}/crows_pairs/crows_pairs_anonymized.csv"
    with pytest.raises(QuantizationError, match="bias benchmarks"):
        _pruned(tiny_llama_dir, "wanda", csv)
    with pytest.raises(QuantizationError, match="bias benchmarks"):
        _pruned(tiny_llama_dir, "sparsegpt", "McGill-NLP/stereoset")


def test_offline_hub_calibration_says_what_to_pass(tiny_llama_dir, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from lm_eval_bias.model_wrappers.quantized_hf import QuantizedHFLM

    with pytest.raises(QuantizationError, match="quantization=wanda could not load calibration=.*calibration=PATH"):
        QuantizedHFLM(pretrained=tiny_llama_dir, device="cpu", quantization="wanda", calibration="no-such/dataset-xyz")


def test_study_config_sparsity_list_is_a_dose_response_curve():
    from lm_eval_bias.study.config import StudyConfigError, expand_compression

    expanded = expand_compression(
        {"quantization": "wanda", "sparsity": [0.1, 0.3, 0.5, 0.7], "calibration": "c.txt"}, "compressions[0]"
    )
    assert [settings["sparsity"] for _, settings in expanded] == [0.1, 0.3, 0.5, 0.7]
    assert expanded[0][0] == "wanda(calibration=c.txt,sparsity=0.1)"
    with pytest.raises(StudyConfigError, match="compressions\\[0\\]: quantization=wanda: sparsity=1.2 is invalid"):
        expand_compression({"quantization": "wanda", "sparsity": [0.5, 1.2]}, "compressions[0]")
