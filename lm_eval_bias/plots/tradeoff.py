"""The paper's "best trade-off" checkpoint of a pretraining trajectory.

With StereoSet's ICAT (which already combines bias and language modelling) it is the
revision with the highest ICAT. Otherwise it is the revision whose bias score is closest
to 50 (unbiased) among those whose language-model quality (StereoSet LMS, else a
capability task's accuracy) is within `max_quality_loss` (a fraction) of the trajectory's
best; with no quality metric at all, simply the one closest to 50.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

QUALITY_METRICS = ("lms", "acc_norm", "acc", "exact_match", "f1")
MAX_QUALITY_LOSS = 0.05


@dataclass(frozen=True)
class TradeOff:
    revision: str
    reason: str


def best_tradeoff(
    trajectory: pd.DataFrame, bias: str, max_quality_loss: float = MAX_QUALITY_LOSS, reference: float = 50.0
) -> TradeOff | None:
    """`trajectory`: one row per revision, a `revision` column, the `bias` column, and optionally
    `icat` and quality columns (QUALITY_METRICS). NaNs are ignored."""
    frame = trajectory.dropna(subset=[bias])
    if frame.empty:
        return None
    if "icat" in frame and frame["icat"].notna().any():
        best = frame.loc[frame["icat"].idxmax()]
        return TradeOff(str(best["revision"]), "highest ICAT")
    distance = (frame[bias] - reference).abs()
    quality = next((m for m in QUALITY_METRICS if m in frame and frame[m].notna().any()), None)
    if quality is not None:
        floor = frame[quality].max() * (1.0 - max_quality_loss)
        allowed = frame[quality] >= floor
        if allowed.any():
            distance = distance.where(allowed, math.inf)
        reason = f"closest to {reference:g} with {quality} ≥ {100 * (1 - max_quality_loss):g}% of its best"
    else:
        reason = f"closest to {reference:g}"
    best = frame.loc[distance.idxmin()]
    return TradeOff(str(best["revision"]), reason)
