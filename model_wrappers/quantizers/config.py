"""A compression method's options as a typed config, and the record a run writes about it.

Like transformers' `BitsAndBytesConfig` / `GPTQConfig`: each method declares one dataclass
of its options, with defaults and a parser per option; `from_options` turns the strings of
`--model_args` (or the values lm-eval already cast) into it, once, and every bad value is an
error that names the valid ones. `to_dict` is what the results JSON records.

    @dataclass
    class RtnConfig(QuantizationConfig):
        bits: int = option(4, integer_in(2, 8), "bits per weight")
        symmetric: bool = option(True, parse_bool, "symmetric levels around zero")

        @property
        def weight_bits(self) -> int:
            return self.bits

This module imports neither torch nor lm-eval: the leaderboard, plots and study read
`config.quantization` records through `QuantizationRecord` and label compressions with
`compression_label`, without loading any method.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lm_eval_bias.errors import BiasError, did_you_mean

UNCOMPRESSED = "none"


class QuantizationError(BiasError, ValueError):
    """A compression method was asked for something it cannot do here."""


# --- option parsers: a value as given (string from --model_args, or already cast) -> typed value ---
# Each raises ValueError whose message names the valid values; the config adds which option it was.


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError("expected true or false (also 1/0, yes/no, on/off)")


def parse_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError("expected an integer") from None


def parse_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number")
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ValueError("expected a number") from None
    if not math.isfinite(number):
        raise ValueError("expected a finite number")
    return number


def parse_str(value: Any) -> str:
    return str(value).strip()


def integer_in(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        try:
            number = parse_int(value)
        except ValueError:
            number = None
        if number is None or not low <= number <= high:
            raise ValueError(f"expected an integer from {low} to {high}")
        return number

    return parse


def positive_int(value: Any) -> int:
    try:
        number = parse_int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ValueError("expected a positive integer")
    return number


def float_in(low: float, high: float) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        try:
            number = parse_float(value)
        except ValueError:
            number = math.nan
        if not low <= number <= high:
            raise ValueError(f"expected a number from {low} to {high}")
        return number

    return parse


def one_of(*choices: Any) -> Callable[[Any], Any]:
    """One of `choices`, compared as the choices' own type (so "4" matches 4, "NF4" matches "nf4")."""

    def parse(value: Any) -> Any:
        for choice in choices:
            try:
                typed = parse_int(value) if isinstance(choice, int) else parse_str(value).lower()
            except ValueError:
                continue
            if typed == choice:
                return choice
        raise ValueError(f"expected one of {', '.join(map(str, choices))}")

    return parse


def option(default: Any, parse: Callable[[Any], Any], doc: str) -> Any:
    """A config field: its default, the parser every given value goes through, and one line of docs."""
    return field(default=default, metadata={"parse": parse, "doc": doc})


# --- the config base class ---------------------------------------------------------------


@dataclass
class QuantizationConfig:
    """A method's options. Subclasses are dataclasses whose fields are all made with `option`."""

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            if value is not None or spec.default is not None:
                setattr(self, spec.name, self._parse(spec, value))
        self.validate()

    def _parse(self, spec: dataclasses.Field, value: Any) -> Any:
        try:
            return spec.metadata["parse"](value)
        except (TypeError, ValueError) as error:
            raise QuantizationError(f"{type(self).__name__}: {spec.name}={value!r} is invalid: {error}.") from None

    def validate(self) -> None:
        """Checks across options (each option's own values are checked by its parser)."""

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return tuple(spec.name for spec in dataclasses.fields(cls))

    @classmethod
    def option_docs(cls) -> dict[str, tuple[Any, str]]:
        """option -> (default, description), for `lm-eval-bias methods` and the docs."""
        return {spec.name: (spec.default, spec.metadata["doc"]) for spec in dataclasses.fields(cls)}

    @classmethod
    def from_options(cls, options: Mapping[str, Any], method: str = "") -> QuantizationConfig:
        """The config from the options given (strings or cast values); unknown names are an error."""
        unknown = sorted(set(options) - set(cls.option_names()))
        if unknown:
            valid = ", ".join(cls.option_names()) or "none"
            close = did_you_mean(unknown[0], cls.option_names()) if len(unknown) == 1 else ""
            name = method or cls.__name__
            raise QuantizationError(
                f"quantization={name} does not take {', '.join(unknown)}{close}; its options: {valid}."
            )
        try:
            config = cls(**options)
        except QuantizationError as error:
            raise QuantizationError(
                str(error).replace(f"{cls.__name__}:", f"quantization={method}:", 1) if method else str(error)
            ) from None
        config._given = dict(options)
        return config

    @property
    def weight_bits(self) -> float | None:
        """Nominal bits per weight set by an option (e.g. `bits`); None: the method's own (`Quantizer.nominal_bits`)."""
        return None

    def to_dict(self) -> dict[str, Any]:
        """Every option, defaults filled in."""
        return {name: getattr(self, name) for name in self.option_names()}

    def adopt(self, found: Mapping[str, Any], source: str) -> None:
        """Take the settings an already-compressed checkpoint holds (`found`); an option given
        that contradicts one of them is an error ("{source} with other settings: ...")."""
        given = {name: getattr(self, name) for name in self.given_options()}
        conflicts = [f"{k}={v} (checkpoint: {found.get(k)})" for k, v in given.items() if k in found and found[k] != v]
        if conflicts:
            raise QuantizationError(f"{source} with other settings: {', '.join(conflicts)}.")
        for name, value in found.items():
            setattr(self, name, value)

    def given_options(self) -> dict[str, Any]:
        """The options as they were given to `from_options` (else the ones that differ from their default).

        The record's label is built from these, not from every setting, so that a run outside a
        study is labelled exactly as a study labels the same compression entry."""
        given = getattr(self, "_given", None)
        if given is not None:
            return dict(given)
        return {
            spec.name: getattr(self, spec.name)
            for spec in dataclasses.fields(self)
            if getattr(self, spec.name) != spec.default
        }


@dataclass
class NoOptions(QuantizationConfig):
    """A method that takes no options."""


# --- labels and the results record ------------------------------------------------------------


def compression_label(settings: Mapping[str, Any]) -> str:
    """{"quantization": "rtn", "bits": 4, "group_size": 128} -> "rtn(bits=4,group_size=128)"."""
    method = settings.get("quantization", UNCOMPRESSED)
    options = ",".join(f"{key}={settings[key]}" for key in sorted(settings) if key != "quantization")
    return f"{method}({options})" if options else str(method)


RECORD_KEYS = (
    "method",
    "label",
    "settings",
    "weight_bits",
    "effective_bits_per_weight",
    "model_bytes_before",
    "model_bytes_after",
    "details",
)


@dataclass
class QuantizationRecord:
    """`config.quantization` in a results JSON: always exactly these keys (see docs/compression.md).

    method: the method's name; label: method and the options given, as `compression_label` writes
    it; settings: every option with defaults filled in; weight_bits: nominal bits per weight (32
    for the uncompressed checkpoint); effective_bits_per_weight: stored bits (codes, scales, zero
    points) per quantized weight, where the method measures it, else None; model_bytes_before:
    4 bytes per logical weight (the fp32 model); model_bytes_after: bytes of the loaded model's
    tensors; details: what the method reports beyond that (versions, kernel, cache, counts).
    """

    method: str
    label: str
    settings: dict[str, Any]
    weight_bits: float | None
    effective_bits_per_weight: float | None = None
    model_bytes_before: int | None = None
    model_bytes_after: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "config.quantization") -> QuantizationRecord:
        if not isinstance(data, Mapping) or set(data) != set(RECORD_KEYS):
            found = ", ".join(sorted(data)) if isinstance(data, Mapping) else type(data).__name__
            raise ValueError(
                f"{where} is not a compression record (keys {', '.join(RECORD_KEYS)}); found: {found}. "
                "Results written before lm-eval-bias recorded this schema: re-run them."
            )
        return cls(**{key: data[key] for key in RECORD_KEYS})

    @classmethod
    def uncompressed(cls) -> QuantizationRecord:
        """What a run without a record (a stock `hf` model, say) stands for: the checkpoint as it is."""
        return cls(method=UNCOMPRESSED, label=UNCOMPRESSED, settings={}, weight_bits=32)
