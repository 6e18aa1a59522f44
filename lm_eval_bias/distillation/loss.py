"""The knowledge-distillation loss (Hinton et al., 2015; DistilBERT, Sanh et al., 2019).

    loss = α · T² · KL(softmax(teacher / T) ‖ softmax(student / T)) + (1 − α) · CE(student, labels)

Both terms are means over the same token positions: those whose label is not -100. For a
causal LM, position t predicts token t+1 (logits and labels are shifted, as the models'
own loss does); for a masked LM, the masked positions predict their original tokens.
T² keeps the gradient of the soft term on the scale of the hard one when T changes.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


class DistillationLoss(NamedTuple):
    loss: torch.Tensor  # α·T²·kl + (1−α)·ce, what is minimised
    kl: torch.Tensor  # mean per-token KL(teacher_T ‖ student_T), without the T² factor
    ce: torch.Tensor  # mean per-token cross-entropy of the student against the labels
    tokens: int  # positions that entered both means


def scored_positions(logits: torch.Tensor, labels: torch.Tensor, *, causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, vocab) logits and (n,) labels of the positions the loss counts."""
    if causal:
        logits, labels = logits[:, :-1], labels[:, 1:]
    keep = labels != IGNORE_INDEX
    return logits[keep], labels[keep]


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float = 2.0,
    alpha: float = 0.5,
    causal: bool = True,
) -> DistillationLoss:
    """The loss of one batch; logits are (batch, length, vocab), labels (batch, length)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher logits {tuple(teacher_logits.shape)} differ; "
            "teacher and student must share the vocabulary"
        )
    student, targets = scored_positions(student_logits, labels, causal=causal)
    teacher, _ = scored_positions(teacher_logits, labels, causal=causal)
    if targets.numel() == 0:
        zero = student_logits.sum() * 0.0  # keeps the graph, so a batch without labels is a no-op step
        return DistillationLoss(zero, zero.detach(), zero.detach(), 0)
    student, teacher = student.float(), teacher.detach().float()
    log_q = F.log_softmax(student / temperature, dim=-1)
    log_p = F.log_softmax(teacher / temperature, dim=-1)
    kl = F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")  # Σ p (log p − log q), mean over positions
    ce = F.cross_entropy(student, targets)
    loss = alpha * temperature**2 * kl + (1.0 - alpha) * ce
    return DistillationLoss(loss, kl.detach(), ce.detach(), int(targets.numel()))
