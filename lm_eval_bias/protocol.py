"""Which protocol a run follows: ours (``default``) or the study's own code (``paper``).

``--metadata '{"protocol": "paper"}'`` makes every benchmark compute the sentence scores
that Gonçalves & Strubell (EMNLP 2023), a fork of bias-bench, computed, so that their
numbers (and bias-bench's leaderboard) can be reproduced, not just their metrics:

- causal LMs, CrowS-Pairs and StereoSet intrasentence: the first token scored from a
  forward pass over the prefix token alone, the others from a pass over the sentence
  without it (:mod:`lm_eval_bias.scoring.paper`);
- masked LMs, CrowS-Pairs: bias-bench's "modified" tokens, pairs skipped when a sentence
  has no differing token, sentence scores rounded to 3 decimals;
- masked LMs, StereoSet: bias-bench's target-word probability, its RoBERTa rule included;
- StereoSet reads the **test** split (bias-bench's ``data/stereoset/test.json``).

``stereoset_split`` (``dev`` | ``test``) picks the StereoSet file on its own; it defaults
to ``test`` under ``paper`` and ``dev`` under ``default``. Pure functions, no harness import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lm_eval_bias.errors import BiasOptionError

PROTOCOLS = ("default", "paper")
STEREOSET_SPLITS = ("dev", "test")
DEFAULT_PROTOCOL = "default"
# Records which protocol and split a task ran under, in its config's metadata (results JSON).
PROTOCOL_KEY = "protocol"
SPLIT_KEY = "stereoset_split"
# Every --metadata key our tasks read (docs/errors.md); any other is refused (did-you-mean), see check_metadata_keys.
METADATA_KEYS = (
    PROTOCOL_KEY,
    SPLIT_KEY,
    "sentence_score",  # crows_pairs_bias
    "stereoset_mlm_score",  # stereoset_bias
    "bbq_choice",  # bbq_bias
    "permutation_samples",  # seat_bias
    "permutation_seed",  # seat_bias
)
OUR_TASK_PREFIXES = ("crows_pairs_bias", "stereoset_bias", "seat_bias", "bbq_bias")


def is_our_task(name: Any) -> bool:
    """``name`` is one of our tasks or groups (crows_pairs_bias, stereoset_bias_gender, ...)."""
    return isinstance(name, str) and name.startswith(OUR_TASK_PREFIXES)


def check_metadata_keys(user_keys, tasks) -> None:
    """Refuse a ``--metadata`` key that none of our tasks reads.

    A key close to one of :data:`METADATA_KEYS` (``protocl``) is refused with a did-you-mean whatever
    the tasks; any other unknown key only when every task of the run is ours (another harness task may read it).

    Args:
        user_keys: the keys given with ``--metadata`` (not the model_args lm-eval merges in).
        tasks: the task names of the run (other entries, e.g. Task objects, count as not ours).
    """
    from lm_eval_bias.errors import did_you_mean

    tasks = list(tasks or [])
    only_ours = bool(tasks) and all(is_our_task(t) for t in tasks)
    for key in sorted(str(k) for k in user_keys):
        if key in METADATA_KEYS:
            continue
        close = did_you_mean(key, METADATA_KEYS)
        if close or only_ours:
            raise BiasOptionError(
                f"--metadata: unknown key {key!r}{close}; the keys lm-eval-bias tasks read: {', '.join(METADATA_KEYS)}"
            )


def check_protocol(value: Any) -> str:
    """The protocol named by ``value`` (None means the default); a clear error otherwise."""
    protocol = DEFAULT_PROTOCOL if value is None else value
    if protocol not in PROTOCOLS:
        raise BiasOptionError(
            f"Unknown protocol {value!r} in --metadata; expected one of {', '.join(map(repr, PROTOCOLS))} "
            '(e.g. --metadata \'{"protocol": "paper"}\').'
        )
    return protocol


def check_stereoset_split(value: Any, protocol: str = DEFAULT_PROTOCOL) -> str:
    """The StereoSet file to read: ``value``, or the protocol's default (test for paper, dev otherwise)."""
    if value is None:
        return "test" if check_protocol(protocol) == "paper" else "dev"
    if value not in STEREOSET_SPLITS:
        raise BiasOptionError(
            f"Unknown stereoset_split {value!r} in --metadata; expected one of "
            f"{', '.join(map(repr, STEREOSET_SPLITS))} (the StereoSet dev.json or test.json)."
        )
    return value


def resolved(metadata: Mapping[str, Any] | None, *, stereoset: bool = False) -> dict[str, Any]:
    """``metadata`` with the protocol (and for StereoSet tasks the split) filled in and checked."""
    out = dict(metadata or {})
    out[PROTOCOL_KEY] = check_protocol(out.get(PROTOCOL_KEY))
    if stereoset:
        out[SPLIT_KEY] = check_stereoset_split(out.get(SPLIT_KEY), out[PROTOCOL_KEY])
    return out


def is_roberta_name(model_name: Any) -> bool:
    """bias-bench's RoBERTa rule: the model's name or path contains 'roberta' (case-sensitive,
    so roberta-base, roberta-large and distilroberta-base all match)."""
    return isinstance(model_name, str) and "roberta" in model_name
