"""register_method: a compression method added from outside the package works like one of METHODS."""

from __future__ import annotations

import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from lm_eval.utils import simple_parse_args_string
from torch import nn
from transformers import AutoModelForCausalLM

from lm_eval_bias import cli
from lm_eval_bias.model_wrappers import quantizers
from lm_eval_bias.model_wrappers.quantizers import auto
from lm_eval_bias.model_wrappers.quantizers.config import (
    QuantizationConfig,
    QuantizationError,
    float_in,
    option,
    parse_bool,
)
from lm_eval_bias.model_wrappers.quantizers.linear_layers import weight_layers

NAME = "test_scaled"
DOC = Path(__file__).resolve().parents[2] / "docs" / "compression.md"


@dataclass
class ScaledConfig(QuantizationConfig):
    factor: float = option(0.5, float_in(-4.0, 4.0), "what every linear weight is multiplied by")
    scale_lm_head: bool = option(False, parse_bool, "scale the LM head too")


class Scaled(quantizers.Quantizer):
    """Multiplies the weights of the linear layers by `factor`: an effect computed by hand."""

    config_class = ScaledConfig
    config: ScaledConfig
    nominal_bits = 32

    def postprocess_model(self, model: nn.Module) -> nn.Module:
        layers = [layer for _, _, layer in weight_layers(model, self.config.scale_lm_head)]
        with torch.no_grad():
            for layer in layers:
                layer.weight.mul_(self.config.factor)
        self.details = {"scaled_layers": len(layers)}
        return model


@pytest.fixture
def registry():
    """The method table as it was, and no cached lookup of a test's methods, once the test is done."""
    before = dict(auto.METHODS)
    yield auto.METHODS
    auto.METHODS.clear()
    auto.METHODS.update(before)
    auto.quantizer_class.cache_clear()
    auto.quantizer_options.cache_clear()


@pytest.fixture
def scaled(registry) -> str:
    assert quantizers.register_method(NAME)(Scaled) is Scaled
    return NAME


def _hand_model() -> nn.Sequential:
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        model[0].bias.copy_(torch.tensor([0.5, -0.5]))
        model[1].weight.copy_(torch.tensor([[1.0, -1.0]]))
    return model


def test_get_quantizer_builds_the_registered_method(scaled):
    quantizer = auto.get_quantizer(scaled, factor="0.25")
    assert type(quantizer) is Scaled and Scaled.name == scaled
    assert quantizer.settings == {"factor": 0.25, "scale_lm_head": False}
    assert auto.QUANTIZERS[scaled] is Scaled and auto.quantizer_class(scaled) is Scaled
    assert list(auto.METHODS)[-1] == scaled  # after the package's own methods
    assert quantizer.record().to_dict()["label"] == f"{scaled}(factor=0.25)"


def test_its_options_become_method_options(registry):
    args = simple_parse_args_string(f"pretrained=x,quantization={NAME},factor=0.25,dtype=float32")
    assert auto.split_model_args(args)[0] == {}  # not yet an option of any method
    quantizers.register_method(NAME)(Scaled)
    options, rest = auto.split_model_args(args)
    assert options == {"factor": 0.25}
    assert rest == {"pretrained": "x", "quantization": NAME, "dtype": "float32"}


def test_bad_options_are_refused_by_its_config(scaled):
    with pytest.raises(
        QuantizationError, match=rf"quantization={scaled}: factor='9' is invalid: expected a number from -4.0 to 4.0"
    ):
        auto.get_quantizer(scaled, factor="9")
    with pytest.raises(QuantizationError, match=rf"quantization={scaled} does not take bits"):
        auto.get_quantizer(scaled, bits=4)


def test_the_effect_on_a_tiny_model_is_the_one_computed_by_hand(scaled):
    model = auto.get_quantizer(scaled, factor=-0.5).postprocess_model(_hand_model())
    assert torch.equal(model[0].weight, torch.tensor([[-0.5, -1.0], [-1.5, -2.0]]))
    assert torch.equal(model[0].bias, torch.tensor([0.5, -0.5]))  # biases are not weights
    assert torch.equal(model[1].weight, torch.tensor([[-0.5, 0.5]]))
    # x = (1, 1): hidden = (-1.5 + 0.5, -3.5 - 0.5) = (-1, -4); output = -0.5 * -1 + 0.5 * -4 = -1.5
    assert model(torch.tensor([[1.0, 1.0]])).item() == -1.5


def test_the_lm_head_of_a_checkpoint_is_left_alone_unless_asked(scaled, tiny_gpt_neox_dir):
    original = AutoModelForCausalLM.from_pretrained(tiny_gpt_neox_dir)
    quantizer = auto.get_quantizer(scaled, factor=0.25)
    model = quantizer.postprocess_model(AutoModelForCausalLM.from_pretrained(tiny_gpt_neox_dir))
    before, after = original.state_dict(), model.state_dict()
    linear_weights = {f"{name}.weight" for name, m in original.named_modules() if isinstance(m, nn.Linear)}
    head = next(f"{name}.weight" for name, m in original.named_modules() if m is original.get_output_embeddings())
    assert head in linear_weights
    for key, value in before.items():
        expected = value * 0.25 if key in linear_weights - {head} else value  # x 0.25 is exact in fp32
        assert torch.equal(after[key], expected), key
    assert quantizer.details == {"scaled_layers": len(linear_weights) - 1}


def test_a_name_already_taken_is_refused(scaled):
    class Other(quantizers.Quantizer):
        pass

    for taken in (scaled, "rtn", "none"):
        with pytest.raises(ValueError, match=rf"quantization={taken} is already registered"):
            quantizers.register_method(taken)(Other)
    assert auto.METHODS["rtn"] == "rtn:RoundToNearest" and auto.METHODS[scaled] is Scaled
    assert not hasattr(Other, "name")


@pytest.mark.parametrize("target", [object, Path, len, "rtn:RoundToNearest"])
def test_only_quantizer_subclasses_are_registered(registry, target):
    with pytest.raises(
        TypeError, match=r"takes a subclass of lm_eval_bias\.model_wrappers\.quantizers\.base\.Quantizer"
    ):
        quantizers.register_method("test_not_a_quantizer")(target)
    assert "test_not_a_quantizer" not in auto.METHODS


@pytest.mark.parametrize("name", ["", "two words", "bits=4", "a,b", "4bit", None])
def test_a_name_that_model_args_cannot_carry_is_refused(registry, name):
    with pytest.raises(ValueError, match="letters, digits and underscores"):
        quantizers.register_method(name)
    assert set(auto.METHODS) == set(registry)


def test_a_class_keeps_its_own_name_only_if_it_is_the_registered_one(registry):
    class Named(Scaled):
        name = "something_else"

    with pytest.raises(ValueError, match=r"Named\.name is 'something_else'"):
        quantizers.register_method(NAME)(Named)

    class Inherits(Scaled):  # a subclass of a registered method gets a name of its own
        pass

    quantizers.register_method(NAME)(Scaled)
    quantizers.register_method("test_scaled_again")(Inherits)
    assert (Scaled.name, Inherits.name) == (NAME, "test_scaled_again")
    assert type(auto.get_quantizer("test_scaled_again")) is Inherits


def test_lm_eval_bias_methods_lists_it(scaled, capsys):
    assert cli.main(["methods"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(auto.METHODS)
    assert lines[-1].split() == [scaled, "devices:", "any", "options:", "factor=0.5,", "scale_lm_head=False"]


def test_the_documented_example_runs(registry, monkeypatch):
    section = DOC.read_text(encoding="utf-8").split("### From outside the package: `register_method`", 1)[1]
    code = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], flags=re.S)[0]
    module = types.ModuleType("my_methods")
    monkeypatch.setitem(sys.modules, module.__name__, module)  # before exec: dataclasses look their module up
    exec(compile(code, str(DOC), "exec"), module.__dict__)

    options, rest = auto.split_model_args(simple_parse_args_string("pretrained=x,quantization=shrink,factor=0.25"))
    assert options == {"factor": 0.25} and rest == {"pretrained": "x", "quantization": "shrink"}
    quantizer = auto.get_quantizer("shrink", **options)
    model = quantizer.postprocess_model(_hand_model())
    assert torch.equal(model[0].weight, torch.tensor([[0.25, 0.5], [0.75, 1.0]]))
    assert quantizer.details == {"shrunk_layers": 2}
