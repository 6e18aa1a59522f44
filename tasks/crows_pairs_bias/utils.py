"""Harness glue for crows_pairs_bias: data in, per-pair metric values out."""

from lm_eval_bias.data.crows_pairs import crows_pairs_dataset
from lm_eval_bias.metrics.crows_pairs import pair_metrics, perplexity  # noqa: F401 - perplexity: the YAML's aggregation
from lm_eval_bias.protocol_tasks import CrowsPairsTask  # noqa: F401 - the YAML's class
from lm_eval_bias.scoring.sentence_scores import (
    check_sentence_score, perplexity_terms, sentence_score, tokenizer_spec,
)


def crows_pairs_docs(bias_type=None, sentence_score="mean", **metadata):
    """lm-eval calls this with the task metadata and the model_args merged in."""
    scoring = {"sentence_score": check_sentence_score(sentence_score), "tokenizer": tokenizer_spec(metadata)}
    dataset = crows_pairs_dataset(bias_type=bias_type)
    return dataset.map(lambda _: {"scoring": scoring})


def doc_to_choice(doc):
    return [doc["sent_more"], doc["sent_less"]]


def process_results(doc, results):
    mode, tokenizer = doc["scoring"]["sentence_score"], doc["scoring"]["tokenizer"]
    score_more, score_less = (
        sentence_score(response, sentence, mode, tokenizer) for response, sentence in zip(results, doc_to_choice(doc))
    )
    terms = [perplexity_terms(response, sentence, tokenizer) for response, sentence in zip(results, doc_to_choice(doc))]
    logprob, tokens = sum(t[0] for t in terms), sum(t[1] for t in terms)
    return {**pair_metrics(score_more, score_less, doc["stereo_antistereo"]),
            "perplexity": (logprob, tokens), "scored_tokens": tokens}


def total(values):
    """Aggregation for the pair counts behind stereo_score and antistereo_score."""
    return float(sum(values))
