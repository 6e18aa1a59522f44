"""Harness glue for stereoset_bias: clusters in, stereoset_score (or the paper protocol's) requests out,
cluster outcomes in, metrics out. The metrics themselves are in lm_eval_bias.metrics.stereoset."""

from lm_eval_bias.data.stereoset import CANDIDATES, stereoset_dataset
from lm_eval_bias.metrics.items import items_aggregations
from lm_eval_bias.metrics.stereoset import (
    METRICS,
    ClusterMetric,
    cluster_outcome,
    stereoset_metrics,
    stereoset_stderrs,
)
from lm_eval_bias.request_types import STEREOSET_PAPER_SCORE, STEREOSET_SCORE
from lm_eval_bias.scoring.stereoset import check_mlm_score
from lm_eval_bias.task_base import BiasTask


class StereoSetTask(BiasTask):
    """One document per cluster, three requests: stereotype, anti-stereotype, unrelated. They are
    ``stereoset_score`` requests, args ``(split, context, sentence, mlm_score)``; under
    ``--metadata '{"protocol": "paper"}'`` intrasentence candidates are ``stereoset_paper_score``
    requests, args ``(context, sentence)``. The protocol also picks the file (``stereoset_split``)."""

    REQUEST_TYPE = STEREOSET_SCORE
    PAPER_REQUEST_TYPE = STEREOSET_PAPER_SCORE
    FOLLOWS_PROTOCOL = True
    STEREOSET = True

    def request_type(self):
        if (self.config.dataset_kwargs or {}).get("split") != "intrasentence":
            return self.REQUEST_TYPE  # paper scores are for intrasentence candidates only
        return super().request_type()

    def request_arguments(self, doc):
        if self.OUTPUT_TYPE == STEREOSET_PAPER_SCORE:
            return [(doc["context"], doc[candidate]) for candidate in CANDIDATES]
        return [(doc["split"], doc["context"], doc[candidate], doc["mlm_score"]) for candidate in CANDIDATES]


def stereoset_docs(split, bias_type=None, stereoset_mlm_score="target_word", **metadata):
    """lm-eval calls this with the task metadata and the model_args merged in."""
    mlm_score = check_mlm_score(stereoset_mlm_score)
    dataset = stereoset_dataset(split, bias_type=bias_type, stereoset_split=metadata.get("stereoset_split", "dev"))
    return dataset.map(lambda _: {"mlm_score": mlm_score})


def process_results(doc, results):
    outcome = cluster_outcome(doc["target"], *(float(score) for score in results))
    return {name: outcome for name in METRICS}


# One aggregation per metric, named as in the YAML.
ss, lms, icat, ss_micro, lms_micro, icat_micro, ss_ci_low, ss_ci_high = items_aggregations(
    stereoset_metrics, METRICS, ClusterMetric, stereoset_stderrs
)
