"""What a distilled student records about its teacher, and how the harness wrappers read it back.

`lm-eval-bias distill` writes the record twice into every checkpoint: as the `distillation`
entry of config.json (full-weight students) and as distillation.json (every checkpoint,
LoRA adapters included, since an adapter folder has no config.json of its own):

    {"teacher": id or absolute path, "teacher_revision": ..., "student_init": ..., "temperature": T,
     "alpha": α, "corpus": ..., "lora": bool, "seed": ..., "step": N}

`quantized_hf` reports it in the results JSON `config` as `distillation`; `distilled_hf`
also takes the teacher from its model args or, for the published students, from KNOWN_PAIRS.

A neutral module (standard library only) shared by the writer (the ``lm_eval_bias.distillation``
package) and the readers (the harness wrappers in ``model_wrappers/``), so that neither imports
the other.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

CONFIG_KEY = "distillation"
RECORD_FILE = "distillation.json"

# Published students and their teachers: student -> (teacher's legacy id, teacher's current id).
KNOWN_PAIRS = {
    "distilbert-base-uncased": ("bert-base-uncased", "google-bert/bert-base-uncased"),
    "distilroberta-base": ("roberta-base", "FacebookAI/roberta-base"),
    "distilgpt2": ("gpt2", "openai-community/gpt2"),
}


def known_teacher(pretrained: Any) -> str | None:
    """The teacher of a published student named by its Hub id (legacy or current) or a folder of that name."""
    if not isinstance(pretrained, str) or not pretrained.strip("/"):
        return None
    path = PurePosixPath(pretrained.rstrip("/"))
    pair = KNOWN_PAIRS.get(path.name)
    if pair is None:
        return None
    legacy, current = pair
    return current if str(path) == f"distilbert/{path.name}" else legacy


def checkpoint_record(model: Any, peft: Any = None) -> dict | None:
    """The record an adapter folder's distillation.json or a model's config carries, if any."""
    if isinstance(peft, (str, Path)) and (Path(peft) / RECORD_FILE).is_file():
        return json.loads((Path(peft) / RECORD_FILE).read_text(encoding="utf-8"))
    record = getattr(getattr(model, "config", None), CONFIG_KEY, None)
    return dict(record) if isinstance(record, dict) else None


def resolve_record(
    model: Any,
    pretrained: Any = None,
    peft: Any = None,
    teacher: str | None = None,
    teacher_revision: str | None = None,
) -> dict | None:
    """The student's record: explicit teacher= first, then the checkpoint's own record, then KNOWN_PAIRS."""
    record = checkpoint_record(model, peft) or {}
    if teacher:
        record = {
            **record,
            "teacher": str(teacher),
            "teacher_revision": teacher_revision,
            "teacher_source": "model_args",
        }
    elif record.get("teacher"):
        record.setdefault("teacher_source", "checkpoint")
        if teacher_revision:
            record["teacher_revision"] = teacher_revision
    elif known_teacher(pretrained):
        record = {
            **record,
            "teacher": known_teacher(pretrained),
            "teacher_revision": teacher_revision,
            "teacher_source": "known_pairs",
        }
    return record or None


def distillation_info(model: Any, peft: Any = None) -> dict:
    """{"distillation": record} for a results JSON's config, or {} for a model that is no student."""
    record = checkpoint_record(model, peft)
    return {CONFIG_KEY: record} if record else {}
