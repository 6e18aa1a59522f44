"""Teacher and student models: loading, building a smaller student from the teacher, vocabulary checks.

A student is either an existing checkpoint (a folder or Hub id) or a smaller configuration of
the teacher's own architecture, initialised from the teacher's weights: embeddings, final
norm and LM head copied, and a subset of the transformer layers copied in order. As
DistilBERT was built from BERT (Sanh et al., 2019), the default subset is every other layer.

    half             every other layer: 0, 2, 4, ...
    layers=N         N layers spread evenly over the teacher's (layers=half the count is `half`)
    keep=0,5,11      exactly these teacher layers, in this order
    config.json      a config of the teacher's architecture (a file, or a folder holding only a config)
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers

from lm_eval_bias.errors import BiasError
from lm_eval_bias.model_wrappers.loading import CheckedLoader, is_encoder_only
from lm_eval_bias.model_wrappers.quantizers.auto import get_quantizer

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


class VocabularyMismatchError(BiasError, ValueError):
    """Teacher and student do not predict over the same vocabulary."""


@dataclass
class LoadedModel:
    model: transformers.PreTrainedModel
    tokenizer: transformers.PreTrainedTokenizerBase | None
    masked: bool
    description: str  # what the student is, for the record
    built: bool = False  # made here from the teacher (not an existing checkpoint)


def auto_class(config) -> type:
    return transformers.AutoModelForMaskedLM if is_encoder_only(config) else transformers.AutoModelForCausalLM


def load_model(name: str, revision: str | None = None, *, require_tokenizer: bool = True) -> LoadedModel:
    """A causal or masked LM with its tokenizer, in fp32, refusing newly initialised weights."""
    config = transformers.AutoConfig.from_pretrained(name, revision=revision)
    loader = CheckedLoader(auto_class(config), get_quantizer("none"))
    model = loader.from_pretrained(name, revision=revision, dtype=torch.float32)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(name, revision=revision)
    except (OSError, ValueError, TypeError):
        if require_tokenizer:
            raise
        tokenizer = None
    return LoadedModel(model, tokenizer, is_encoder_only(config), name)


# --------------------------------------------------------------------- specs


def parse_layer_spec(spec: str, teacher_layers: int) -> list[int] | None:
    """Teacher layer indices a spec asks for, or None when the spec is not a layer spec."""
    text = spec.strip().lower().replace(" ", "")
    if text == "half":
        return list(range(0, teacher_layers, 2))
    if text.startswith("keep="):
        layers = [int(v) for v in text[len("keep=") :].split(",") if v]
        if not layers or len(set(layers)) != len(layers) or not all(0 <= i < teacher_layers for i in layers):
            raise ValueError(f"--student {spec!r}: keep= takes distinct layer indices in 0..{teacher_layers - 1}")
        return layers
    if text.startswith("layers="):
        count = int(text[len("layers=") :])
        if not 1 <= count <= teacher_layers:
            raise ValueError(f"--student {spec!r}: the teacher has {teacher_layers} layers")
        return evenly_spaced(count, teacher_layers)
    return None


def evenly_spaced(count: int, total: int) -> list[int]:
    """count of total layers, spread evenly from the first one: half of 12 is 0, 2, ..., 10."""
    return [math.floor(i * total / count) for i in range(count)]


def is_config_only(spec: str) -> bool:
    path = Path(spec)
    if path.is_file() and path.suffix == ".json":
        return True
    return path.is_dir() and (path / "config.json").is_file() and not any((path / f).exists() for f in WEIGHT_FILES)


# ------------------------------------------------------------ layer surgery


def layer_stack(model: torch.nn.Module, num_layers: int) -> str:
    """Name of the ModuleList holding the transformer layers (model.layers, transformer.h, ...)."""
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == num_layers and name:
            return name
    raise ValueError(f"{type(model).__name__} has no list of {num_layers} layers to take a student's layers from")


def num_layers(config) -> int:
    return int(config.num_hidden_layers)


def student_config(teacher_config, layers: list[int]):
    """The teacher's config with only these layers; per-layer settings (e.g. layer_types) follow them."""
    total = num_layers(teacher_config)
    values = teacher_config.to_dict()
    for key, value in values.items():
        if "layer" in key and isinstance(value, list) and len(value) == total:
            values[key] = [value[i] for i in layers]
    values[teacher_config.attribute_map.get("num_hidden_layers", "num_hidden_layers")] = len(layers)
    for stale in ("quantization_config", "_name_or_path", "transformers_version", "distillation"):
        values.pop(stale, None)
    return type(teacher_config).from_dict(values)


def init_from_teacher(student: torch.nn.Module, teacher: torch.nn.Module, layers: list[int] | None) -> None:
    """Copy the teacher's weights into the student; layer i of the student gets teacher layer layers[i].

    Every student tensor must be filled from a teacher tensor of the same shape.
    """
    total = num_layers(teacher.config)
    prefix = layer_stack(teacher, total) + "."
    position = {teacher_index: student_index for student_index, teacher_index in enumerate(layers or range(total))}
    mapped = {}
    for key, tensor in teacher.state_dict().items():
        if key.startswith(prefix):
            index, rest = key[len(prefix) :].split(".", 1)
            if int(index) not in position:
                continue
            key = f"{prefix}{position[int(index)]}.{rest}"
        mapped[key] = tensor
    own = student.state_dict()
    wrong = [k for k, v in own.items() if k in mapped and mapped[k].shape != v.shape]
    missing = [k for k in own if k not in mapped]
    if wrong or missing:
        shown = ", ".join((wrong + missing)[:6])
        raise ValueError(
            f"cannot initialise the student from the teacher: {len(wrong)} tensors differ in shape and {len(missing)} "
            f"have no teacher counterpart ({shown}); give a config of the same widths or --student-init random"
        )
    student.load_state_dict({k: mapped[k] for k in own}, strict=True)


# ------------------------------------------------------------------ student


def build_student(
    spec: str, teacher: LoadedModel, *, init: str = "teacher", revision: str | None = None
) -> LoadedModel:
    """The student a --student value names (see the module docstring)."""
    if init not in ("teacher", "random"):
        raise ValueError(f"--student-init must be 'teacher' or 'random', got {init!r}")
    tconfig = teacher.model.config
    layers = parse_layer_spec(spec, num_layers(tconfig))
    if layers is not None:
        config, what = student_config(tconfig, layers), f"teacher layers {layers}"
    elif is_config_only(spec):
        path = Path(spec) if Path(spec).is_file() else Path(spec) / "config.json"
        values = json.loads(path.read_text(encoding="utf-8"))
        if values.get("model_type") != tconfig.model_type:
            raise ValueError(
                f"student config {path} has model_type {values.get('model_type')!r}; "
                f"a config student must share the teacher's architecture ({tconfig.model_type!r})"
            )
        config, what = type(tconfig).from_dict(values), f"config {path}"
        layers = evenly_spaced(num_layers(config), num_layers(tconfig)) if init == "teacher" else None
    else:
        student = load_model(spec, revision, require_tokenizer=False)
        student.tokenizer = student.tokenizer or teacher.tokenizer
        check_compatible(teacher, student)
        return student
    config.architectures = [type(teacher.model).__name__]
    torch.manual_seed(0)  # reproducible random parts (none when every tensor comes from the teacher)
    model = type(teacher.model)(config).to(torch.float32)
    if init == "teacher":
        init_from_teacher(model, teacher.model, layers)
        what = f"{what} of the teacher"
    else:
        what = f"{what}, random init"
    student = LoadedModel(model, teacher.tokenizer, teacher.masked, what, built=True)
    check_compatible(teacher, student)
    return student


def output_size(model: transformers.PreTrainedModel) -> int:
    return int(model.get_output_embeddings().weight.shape[0])


def check_compatible(teacher: LoadedModel, student: LoadedModel) -> None:
    """Both causal or both masked, one vocabulary, one output size; raises otherwise."""
    if teacher.masked != student.masked:
        kinds = {True: "masked", False: "causal"}
        raise ValueError(
            f"the teacher is a {kinds[teacher.masked]} LM and the student a {kinds[student.masked]} LM; "
            "distillation needs two of the same kind"
        )
    t_size, s_size = output_size(teacher.model), output_size(student.model)
    if t_size != s_size:
        raise VocabularyMismatchError(
            f"teacher and student vocabularies must match: the teacher predicts over {t_size} tokens, "
            f"the student ({student.description}) over {s_size}"
        )
    if teacher.tokenizer is not None and student.tokenizer is not None and teacher.tokenizer is not student.tokenizer:
        t_vocab, s_vocab = teacher.tokenizer.get_vocab(), student.tokenizer.get_vocab()
        if t_vocab != s_vocab:
            differ = sorted(set(t_vocab.items()) ^ set(s_vocab.items()), key=lambda kv: kv[1])[:3]
            raise VocabularyMismatchError(
                f"teacher and student vocabularies must match: their tokenizers differ "
                f"({len(t_vocab)} vs {len(s_vocab)} entries; e.g. {differ})"
            )


def resolved_id(name: str) -> str:
    """A local folder as an absolute path (so the record survives a change of directory), a Hub id as is."""
    return os.path.abspath(name) if os.path.isdir(name) else name
