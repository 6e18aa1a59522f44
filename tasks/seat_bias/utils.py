"""Harness glue for seat_bias: a test in, one sentence_embedding request per sentence out,
embeddings in, effect size and p-value out (computed in lm_eval_bias.metrics.seat)."""

import numpy as np

from lm_eval_bias.data.seat import ROLES, seat_dataset
from lm_eval_bias.errors import BiasOptionError
from lm_eval_bias.metrics.seat import seat_test
from lm_eval_bias.request_types import SENTENCE_EMBEDDING
from lm_eval_bias.task_base import BiasTask


class SeatTask(BiasTask):
    """One document per test: the sentences of targ1, targ2, attr1, attr2, in that order."""

    REQUEST_TYPE = SENTENCE_EMBEDDING

    def request_arguments(self, doc):
        return [(sentence,) for role in ROLES for sentence in doc[role]]


def seat_docs(test, file=None, permutation_samples=100_000, permutation_seed=0, **metadata):
    """lm-eval calls this with the task metadata and the model_args merged in."""
    samples, seed = int(permutation_samples), int(permutation_seed)
    if samples < 1:
        raise BiasOptionError(f"permutation_samples must be a positive integer, got {permutation_samples!r}.")
    return seat_dataset(test, file=file).map(lambda _: {"permutation_samples": samples, "permutation_seed": seed})


def process_results(doc, results):
    embeddings, start = {}, 0
    for role in ROLES:
        stop = start + len(doc[role])
        embeddings[role] = np.stack([np.asarray(vector, dtype=np.float64) for vector in results[start:stop]])
        start = stop
    return seat_test(
        embeddings["targ1"],
        embeddings["targ2"],
        embeddings["attr1"],
        embeddings["attr2"],
        samples=doc["permutation_samples"],
        seed=doc["permutation_seed"],
    )
