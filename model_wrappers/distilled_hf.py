"""`distilled_hf`: `quantized_hf` for a distilled student, with its teacher in the results JSON.

    lm_eval --model distilled_hf --model_args pretrained=distilgpt2,quantization=dynamic_int8
    lm_eval --model distilled_hf --model_args pretrained=DIR/checkpoint-200
    lm_eval --model distilled_hf --model_args pretrained=my/student,teacher=my/teacher,teacher_revision=v1

Everything `quantized_hf` accepts works (quantization=, backend=, peft=, ...); a quantized
student is one more point of the study. The teacher comes from, in this order: `teacher=`
(with `teacher_revision=`), the record `lm-eval-bias distill` wrote into the checkpoint, or
the published pairs in `lm_eval_bias.distillation_record.KNOWN_PAIRS`. A student whose
teacher is none of these is refused: a leaderboard row for a student without a teacher
could not be compared with anything. The results JSON `config` gets `distillation`:
{"teacher", "teacher_revision", "teacher_source", and the training record if there is one}.
"""

from __future__ import annotations

from typing import Any

from lm_eval_bias.distillation_record import CONFIG_KEY, resolve_record
from lm_eval_bias.errors import BiasOptionError
from lm_eval_bias.model_wrappers.quantized_hf import QuantizedHFLM


class DistilledHFLM(QuantizedHFLM):
    def __init__(
        self, pretrained, teacher: str | None = None, teacher_revision: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(pretrained, **kwargs)
        revision = None if teacher_revision is None else str(teacher_revision)  # "1" arrives as an int
        self._distillation = resolve_record(self._model, pretrained, self.peft, teacher, revision)
        if self._distillation is None:
            raise BiasOptionError(
                f"distilled_hf: no teacher known for {pretrained!r}; pass teacher=ID[,teacher_revision=REV] in "
                "--model_args (or evaluate it with --model quantized_hf)"
            )

    @property
    def teacher(self) -> str:
        return self._distillation["teacher"]

    def get_model_info(self) -> dict[str, Any]:
        return {**super().get_model_info(), CONFIG_KEY: self._distillation}
