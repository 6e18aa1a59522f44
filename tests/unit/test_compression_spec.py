"""The typed compression spec: one config class per method, parsed once, recorded with a fixed schema.

Expected values are written out by hand (defaults, error wording, whole records), not read back
from the code under test.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from lm_eval.utils import simple_parse_args_string

from lm_eval_bias.model_wrappers.loading import model_bytes, stored_bits_per_weight
from lm_eval_bias.model_wrappers.quantizers.auto import METHODS, QUANTIZERS, get_quantizer, split_model_args
from lm_eval_bias.model_wrappers.quantizers.config import (
    RECORD_KEYS,
    QuantizationConfig,
    QuantizationError,
    QuantizationRecord,
    compression_label,
)
from lm_eval_bias.model_wrappers.quantizers.gptq import GptqConfig
from lm_eval_bias.model_wrappers.quantizers.int8_weight_only import Int8WeightOnlyConfig
from lm_eval_bias.model_wrappers.quantizers.rtn import RtnConfig

# --------------------------------------------------------------- defaults


def test_defaults_of_every_configurable_method():
    assert RtnConfig().to_dict() == {"bits": 4, "group_size": None, "symmetric": True, "quantize_lm_head": False}
    assert GptqConfig().to_dict() == {
        "bits": 4,
        "group_size": 128,
        "desc_act": False,
        "calibration": "Salesforce/wikitext:wikitext-2-raw-v1",
        "calibration_samples": 128,
        "seed": 0,
        "kernel": "gptq_torch",
    }
    assert Int8WeightOnlyConfig().to_dict() == {"quantize_lm_head": False}
    for name in ("none", "fp16", "bf16", "dynamic_int8", "bnb_int8", "bnb_nf4", "bnb_fp4"):
        assert get_quantizer(name).settings == {}, name


@pytest.mark.parametrize(
    "name, bits",
    [
        ("none", 32),
        ("fp16", 16),
        ("bf16", 16),
        ("dynamic_int8", 8),
        ("bnb_int8", 8),
        ("bnb_nf4", 4),
        ("bnb_fp4", 4),
        ("int8_weight_only", 8),
        ("rtn", 4),
        ("gptq", 4),
    ],
)
def test_nominal_weight_bits(name, bits):
    assert get_quantizer(name).weight_bits == bits


def test_bits_option_sets_the_nominal_bits():
    assert get_quantizer("rtn", bits="3").weight_bits == 3
    assert get_quantizer("gptq", bits=8).weight_bits == 8


def test_every_table_row_is_a_quantizer_of_that_name_with_documented_options():
    for name in METHODS:
        cls = QUANTIZERS[name]
        assert cls.name == name
        assert dataclasses.is_dataclass(cls.config_class) and issubclass(cls.config_class, QuantizationConfig)
        for option, (_, doc) in cls.config_class.option_docs().items():
            assert doc.strip(), f"{name}.{option} has no description"


# --------------------------------------------------------------- validation names the valid values


@pytest.mark.parametrize(
    "method, options, message",
    [
        ("rtn", {"bits": "9"}, "quantization=rtn: bits='9' is invalid: expected an integer from 2 to 8."),
        ("rtn", {"bits": "four"}, "quantization=rtn: bits='four' is invalid: expected an integer from 2 to 8."),
        ("rtn", {"symmetric": "maybe"}, "quantization=rtn: symmetric='maybe' is invalid: expected true or false"),
        (
            "rtn",
            {"group_size": "-4"},
            "quantization=rtn: group_size='-4' is invalid: expected a positive integer, or -1",
        ),
        ("gptq", {"bits": "5"}, "quantization=gptq: bits='5' is invalid: expected one of 2, 3, 4, 8."),
        (
            "gptq",
            {"group_size": "0"},
            "quantization=gptq: group_size='0' is invalid: expected a positive integer, or -1",
        ),
        (
            "gptq",
            {"calibration_samples": "0"},
            "quantization=gptq: calibration_samples='0' is invalid: expected a positive integer.",
        ),
        (
            "int8_weight_only",
            {"quantize_lm_head": "perhaps"},
            "quantization=int8_weight_only: quantize_lm_head='perhaps' is invalid: expected true or false",
        ),
        (
            "rtn",
            {"bitz": 4},
            "quantization=rtn does not take bitz (did you mean 'bits'?); its options: bits, group_size, symmetric, "
            "quantize_lm_head.",
        ),
        ("none", {"bits": 4}, "quantization=none does not take bits; its options: none."),
    ],
)
def test_bad_options_name_the_valid_values(method, options, message):
    with pytest.raises(QuantizationError) as error:
        get_quantizer(method, **options)
    assert str(error.value).startswith(message)


def test_unknown_method_lists_the_methods():
    with pytest.raises(QuantizationError) as error:
        get_quantizer("int3_magic")
    assert str(error.value).startswith(
        "Unknown quantization 'int3_magic'; valid choices: none, fp16, bf16, dynamic_int8"
    )


def test_direct_construction_validates_too():
    with pytest.raises(QuantizationError, match="RtnConfig: bits=1 is invalid: expected an integer from 2 to 8"):
        RtnConfig(bits=1)
    assert RtnConfig(bits="5", symmetric="off").to_dict() == {
        "bits": 5,
        "group_size": None,
        "symmetric": False,
        "quantize_lm_head": False,
    }


# --------------------------------------------------------------- parsed once, from model_args strings


def test_model_args_string_is_split_and_parsed_into_typed_settings():
    args = simple_parse_args_string(
        "pretrained=org/m,quantization=rtn,bits=3,group_size=128,symmetric=false,dtype=float32"
    )
    quantization = args.pop("quantization")
    options, rest = split_model_args(args)
    assert options == {"bits": 3, "group_size": 128, "symmetric": False}  # lm-eval casts; we parse the rest
    assert rest == {"pretrained": "org/m", "dtype": "float32"}
    assert get_quantizer(quantization, **options).settings == {
        "bits": 3,
        "group_size": 128,
        "symmetric": False,
        "quantize_lm_head": False,
    }


@pytest.mark.parametrize(
    "given, expected",
    [
        ({"bits": "3", "group_size": "-1", "symmetric": "FALSE"}, {"bits": 3, "group_size": None, "symmetric": False}),
        ({"bits": 3, "group_size": -1, "symmetric": False}, {"bits": 3, "group_size": None, "symmetric": False}),
        ({"group_size": "none", "quantize_lm_head": "1"}, {"group_size": None, "quantize_lm_head": True}),
        ({"group_size": 0}, {"group_size": None}),
        ({"bits": 8.0}, {"bits": 8}),
    ],
)
def test_strings_and_cast_values_parse_alike(given, expected):
    settings = get_quantizer("rtn", **given).settings
    assert {key: settings[key] for key in expected} == expected


def test_gptq_strings():
    settings = get_quantizer("gptq", bits="3", group_size="none", desc_act="yes", kernel=" AUTO ", seed="7").settings
    assert settings == {
        "bits": 3,
        "group_size": -1,
        "desc_act": True,
        "calibration": "Salesforce/wikitext:wikitext-2-raw-v1",
        "calibration_samples": 128,
        "seed": 7,
        "kernel": "auto",
    }


def test_options_are_parsed_once(monkeypatch):
    calls = []
    original = RtnConfig.from_options.__func__

    def counting(cls, options, method=""):
        calls.append(dict(options))
        return original(cls, options, method)

    monkeypatch.setattr(RtnConfig, "from_options", classmethod(counting))
    quantizer = get_quantizer("rtn", bits="6")
    _ = (quantizer.settings, quantizer.weight_bits, quantizer.record().to_dict(), quantizer.settings)
    assert calls == [{"bits": "6"}]


# --------------------------------------------------------------- the record: a fixed schema


def test_record_schema_is_exactly_these_keys():
    assert RECORD_KEYS == (
        "method",
        "label",
        "settings",
        "weight_bits",
        "effective_bits_per_weight",
        "model_bytes_before",
        "model_bytes_after",
        "details",
    )
    for name in METHODS:
        assert tuple(get_quantizer(name).record().to_dict()) == RECORD_KEYS, name


def test_rtn_record_before_postprocessing():
    record = get_quantizer("rtn", bits="3", group_size="-1", symmetric="false").record(1000, 400).to_dict()
    assert record == {
        "method": "rtn",
        "label": "rtn(bits=3,group_size=-1,symmetric=false)",  # the options as given, sorted
        "settings": {"bits": 3, "group_size": None, "symmetric": False, "quantize_lm_head": False},
        "weight_bits": 3,
        "effective_bits_per_weight": None,  # measured by postprocess_model
        "model_bytes_before": 1000,
        "model_bytes_after": 400,
        "details": {},
    }


def test_rtn_record_after_postprocessing_a_small_model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(24, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4, bias=False))
    quantizer = get_quantizer("rtn", bits=4, group_size=8)
    quantizer.postprocess_model(model)
    record = quantizer.record().to_dict()
    # 24-wide rows: 3 groups of 8 -> 4 + 3*16/24; 8-wide rows: 1 group -> 4 + 16/8; weighted by 8*24 and 4*8 weights
    expected = (8 * 24 * (4 + 48 / 24) + 4 * 8 * (4 + 16 / 8)) / (8 * 24 + 4 * 8)
    assert record["effective_bits_per_weight"] == pytest.approx(round(expected, 4))
    assert record["details"]["quantized_layers"] == 2 and record["details"]["quantized_weights"] == 224
    # packed: biases and everything else at fp32 (8 bias values), weights at their effective bits
    assert record["details"]["packed_model_bytes"] == 8 * 4 + math.ceil((8 * 24 * 6 + 4 * 8 * 6) / 8)
    assert record["label"] == "rtn(bits=4,group_size=8)"


def test_record_round_trips_and_refuses_other_shapes():
    record = get_quantizer("gptq", bits=8).record(10, 5)
    assert QuantizationRecord.from_dict(record.to_dict()) == record
    legacy = {"method": "rtn", "bits": 4, "group_size": "per output channel"}
    with pytest.raises(ValueError, match="results.json: config.quantization is not a compression record"):
        QuantizationRecord.from_dict(legacy, where="results.json: config.quantization")
    assert QuantizationRecord.uncompressed().to_dict() == {
        "method": "none",
        "label": "none",
        "settings": {},
        "weight_bits": 32,
        "effective_bits_per_weight": None,
        "model_bytes_before": None,
        "model_bytes_after": None,
        "details": {},
    }


def test_compression_label():
    assert compression_label({"quantization": "rtn", "group_size": 128, "bits": 4}) == "rtn(bits=4,group_size=128)"
    assert compression_label({"quantization": "none"}) == "none"
    assert compression_label({}) == "none"


# --------------------------------------------------------------- one measurement of stored bits and bytes


class _PackedLayer(torch.nn.Module):
    """What a GPTQ layer holds: 4-bit codes packed in int32, fp16 scales, packed zeros, a group index."""

    def __init__(self, in_features: int, out_features: int, group_size: int) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        groups = in_features // group_size
        self.register_buffer("qweight", torch.zeros(in_features // 8, out_features, dtype=torch.int32))
        self.register_buffer("qzeros", torch.zeros(groups, out_features // 8, dtype=torch.int32))
        self.register_buffer("scales", torch.zeros(groups, out_features, dtype=torch.float16))
        self.register_buffer("g_idx", torch.zeros(in_features, dtype=torch.int32))


def test_stored_bits_per_weight_by_hand():
    assert stored_bits_per_weight([torch.nn.Linear(16, 4)]) == 32.0  # the bias is not a weight
    assert stored_bits_per_weight([torch.nn.Linear(16, 4).half()]) == 16.0
    packed = _PackedLayer(64, 16, 32)
    # per group of 32 inputs x 16 outputs: 4-bit codes; per group and output: fp16 scale + 4-bit zero;
    # 32-bit g_idx per input
    expected = (64 * 16 * 4 + 2 * 16 * (16 + 4) + 64 * 32) / (64 * 16)
    assert stored_bits_per_weight([packed]) == pytest.approx(expected)
    both = (64 * 16 * expected + 16 * 4 * 32) / (64 * 16 + 16 * 4)
    assert stored_bits_per_weight([packed, torch.nn.Linear(16, 4)]) == pytest.approx(both)
    with pytest.raises(ValueError):
        stored_bits_per_weight([])


def test_model_bytes_counts_a_tied_weight_once():
    embedding = torch.nn.Embedding(10, 6)
    head = torch.nn.Linear(6, 10, bias=False)
    head.weight = embedding.weight
    model = torch.nn.ModuleDict({"embed": embedding, "head": head, "norm": torch.nn.LayerNorm(6)})
    assert model_bytes(model) == 4 * (10 * 6 + 6 + 6)
