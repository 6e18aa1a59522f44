"""Harness glue for stereoset_bias: clusters in, stereoset_score requests out, cluster outcomes in,
metrics out. The metrics themselves are in lm_eval_bias.metrics.stereoset."""

from functools import lru_cache

from lm_eval_bias.data.stereoset import CANDIDATES, stereoset_dataset
from lm_eval_bias.metrics.stereoset import METRICS, ClusterMetric, cluster_outcome, stereoset_metrics
from lm_eval_bias.protocol_tasks import StereoSetProtocolTask
from lm_eval_bias.request_types import STEREOSET_SCORE
from lm_eval_bias.scoring.stereoset import check_mlm_score


class StereoSetTask(StereoSetProtocolTask):
    """One document per cluster, three stereoset_score requests: stereotype, anti-stereotype, unrelated."""

    OUTPUT_TYPE = STEREOSET_SCORE

    def request_arguments(self, doc):
        return [(doc["split"], doc["context"], doc[candidate], doc["mlm_score"]) for candidate in CANDIDATES]


def stereoset_docs(split, bias_type=None, stereoset_mlm_score="target_word", **metadata):
    """lm-eval calls this with the task metadata and the model_args merged in."""
    mlm_score = check_mlm_score(stereoset_mlm_score)
    dataset = stereoset_dataset(split, bias_type=bias_type, stereoset_split=metadata.get("stereoset_split", "dev"))
    return dataset.map(lambda _: {"mlm_score": mlm_score})


def process_results(doc, results):
    outcome = cluster_outcome(doc["target"], *(float(score) for score in results))
    return {name: outcome for name in METRICS}


@lru_cache(maxsize=8)
def _metrics(outcomes):
    return stereoset_metrics(outcomes)


def _aggregation(name):
    def aggregate(items):
        """The metric's value, carrying the cluster outcomes for the groups above this task
        (which recompute their term-averaged metrics from all of their subtasks' clusters)."""
        outcomes = tuple(tuple(item) for item in items)
        return ClusterMetric(_metrics(outcomes)[name], outcomes)

    aggregate.__name__ = name
    return aggregate


# One aggregation per metric, named as in the YAML.
ss, lms, icat, ss_micro, lms_micro, icat_micro, ss_ci_low, ss_ci_high = map(_aggregation, METRICS)
