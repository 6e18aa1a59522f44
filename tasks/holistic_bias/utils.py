"""Harness glue for holistic_bias: sentences in, each sentence's log-likelihood out, metrics from
lm_eval_bias.metrics.holistic_bias."""

from lm_eval_bias.data.holistic_bias import check_set, holistic_bias_dataset
from lm_eval_bias.metrics.holistic_bias import METRICS, holistic_bias_metrics
from lm_eval_bias.metrics.items import items_aggregations
from lm_eval_bias.scoring.sentence_scores import perplexity_terms, tokenizer_spec
from lm_eval_bias.task_base import BiasTask


class HolisticBiasTask(BiasTask):
    """The YAML's class: one loglikelihood request per sentence; each sentence's metric value is its
    ``(axis, template, descriptor, noun, loglikelihood, tokens)``."""

    def read_settings(self, metadata):
        """The sentence set (checked before any data is read), and the tokenizer that counts tokens for
        models whose responses carry no count (stock ``hf``)."""
        self.holistic_bias_set = check_set(metadata.get("holistic_bias_set"))
        self.tokenizer = tokenizer_spec(metadata)

    def process_results(self, doc, results):
        (response,) = results
        loglikelihood, tokens = perplexity_terms(response, doc["text"], self.tokenizer)
        item = (doc["axis"], doc["template"], doc["descriptor"], doc["noun"], loglikelihood, tokens)
        return {name: item for name in METRICS}


def holistic_bias_docs(axis, holistic_bias_set=None, **metadata):
    """lm-eval calls this with the task metadata and the model_args merged in."""
    return holistic_bias_dataset(axis, check_set(holistic_bias_set))


# One aggregation per metric, named as in the YAML.
(
    likelihood_bias,
    likelihood_bias_ci_low,
    likelihood_bias_ci_high,
    descriptor_pairs,
    descriptors,
    median_perplexity,
) = items_aggregations(holistic_bias_metrics, METRICS)
