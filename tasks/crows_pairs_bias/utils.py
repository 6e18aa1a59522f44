"""Harness glue for crows_pairs_bias: data in, per-pair metric values out."""

from lm_eval_bias.data.crows_pairs import crows_pairs_dataset
from lm_eval_bias.metrics.crows_pairs import pair_metrics, perplexity  # noqa: F401 - perplexity: the YAML's aggregation
from lm_eval_bias.metrics.stderr import nanmean  # noqa: F401 - the YAML's aggregation, with its closed-form stderr
from lm_eval_bias.protocol_tasks import CrowsPairsTask
from lm_eval_bias.scoring.sentence_scores import check_sentence_score, perplexity_terms, sentence_score


class CrowsPairsBiasTask(CrowsPairsTask):
    """The YAML's class: the protocol's requests (:class:`CrowsPairsTask`), whose two responses per
    pair become the pair's metric values here, scored with the settings the task read from its metadata."""

    def pair_values(self, doc, responses):
        return pair_metric_values(doc, responses, self.sentence_score, self.tokenizer)


def crows_pairs_docs(bias_type=None, sentence_score="mean", **metadata):
    """lm-eval calls this with the task metadata and the model_args merged in."""
    check_sentence_score(sentence_score)  # a bad value fails before any data is read
    return crows_pairs_dataset(bias_type=bias_type)


def doc_to_choice(doc):
    return [doc["sent_more"], doc["sent_less"]]


def pair_metric_values(doc, responses, mode, tokenizer):
    """Metric values of one pair from its two responses (sent_more's, sent_less's) under the sentence
    score ``mode``; ``tokenizer`` (tokenizer_spec) counts tokens for responses without their own count."""
    score_more, score_less = (
        sentence_score(response, sentence, mode, tokenizer) for response, sentence in zip(responses, doc_to_choice(doc))
    )
    terms = [
        perplexity_terms(response, sentence, tokenizer) for response, sentence in zip(responses, doc_to_choice(doc))
    ]
    logprob, tokens = sum(t[0] for t in terms), sum(t[1] for t in terms)
    return {
        **pair_metrics(score_more, score_less, doc["stereo_antistereo"]),
        "perplexity": (logprob, tokens),
        "scored_tokens": tokens,
    }


def total(values):
    """Aggregation for the pair counts behind stereo_score and antistereo_score."""
    return float(sum(values))
