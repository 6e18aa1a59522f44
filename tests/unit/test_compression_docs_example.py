"""docs/compression.md "Adding a method": its example module and table line, run as written."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
import torch
from lm_eval.utils import simple_parse_args_string

from lm_eval_bias.model_wrappers.quantizers import auto

DOC = Path(__file__).resolve().parents[2] / "docs" / "compression.md"
PACKAGE = "lm_eval_bias.model_wrappers.quantizers"


def _adding_a_method_blocks() -> list[str]:
    section = DOC.read_text(encoding="utf-8").split("## Adding a method", 1)[1].split("\n## ", 1)[0]
    section = section.split("\n### ", 1)[0]  # its subsections have examples of their own
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.fixture
def documented_method(monkeypatch):
    module_code, table_line = _adding_a_method_blocks()
    name, target = re.fullmatch(r'\s*"(\w+)": "(\w+:\w+)",\s*', table_line).groups()
    module = types.ModuleType(f"{PACKAGE}.{target.split(':')[0]}")
    monkeypatch.setitem(sys.modules, module.__name__, module)  # before exec: dataclasses look their module up
    exec(compile(module_code, str(DOC), "exec"), module.__dict__)
    monkeypatch.setitem(auto.METHODS, name, target)
    auto.quantizer_class.cache_clear()
    auto.quantizer_options.cache_clear()
    yield name
    auto.quantizer_class.cache_clear()
    auto.quantizer_options.cache_clear()


def _bf16_by_bits(weight: torch.Tensor) -> torch.Tensor:
    """fp32 -> nearest bfloat16 (ties to even), by integer arithmetic on the fp32 bit pattern."""
    bits = weight.contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    rounded = torch.where(rounded >= 2**31, rounded - 2**32, rounded).to(torch.int32)
    return rounded.view(torch.float32)


def test_the_documented_method_is_one_module_and_one_line(documented_method):
    args = simple_parse_args_string(f"pretrained=x,quantization={documented_method},quantize_lm_head=true")
    options, rest = auto.split_model_args(args)
    assert options == {"quantize_lm_head": True} and rest == {"pretrained": "x", "quantization": documented_method}
    quantizer = auto.get_quantizer(documented_method, **options)

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    original = [layer.weight.detach().clone() for layer in (model[0], model[2])]
    quantizer.postprocess_model(model)
    for layer, weight in zip((model[0], model[2]), original):
        assert layer.weight.dtype == torch.float32 and torch.equal(layer.weight, _bf16_by_bits(weight))
        assert not torch.equal(layer.weight, weight)
    record = quantizer.record(100, 100).to_dict()
    assert record == {
        "method": documented_method,
        "label": f"{documented_method}(quantize_lm_head=True)",
        "settings": {"quantize_lm_head": True},
        "weight_bits": 16,
        "effective_bits_per_weight": 16.0,
        "model_bytes_before": 100,
        "model_bytes_after": 100,
        "details": {"rounded_layers": 2, "lm_head_untied": False},
    }
    with pytest.raises(auto.QuantizationError, match="quantize_lm_head='sometimes' is invalid: expected true or false"):
        auto.get_quantizer(documented_method, quantize_lm_head="sometimes")
