"""Harness glue for bbq_bias: items in, the chosen answer's outcome out, metrics from
lm_eval_bias.metrics.bbq."""

from lm_eval_bias.data.bbq import bbq_dataset
from lm_eval_bias.metrics.bbq import (
    METRICS,
    answer_scores,
    bbq_metrics,
    bbq_stderrs,
    check_choice_rule,
    chosen_answer,
    item_outcome,
)
from lm_eval_bias.metrics.items import items_aggregations


def bbq_docs(category, bbq_choice="sum", **metadata):
    """lm-eval calls this with the task metadata and the model_args merged in; each document
    carries the choice rule so that process_results needs nothing else."""
    rule = check_choice_rule(bbq_choice)
    return bbq_dataset(category).map(lambda _: {"bbq_choice": rule})


def choose(doc, loglikelihoods) -> int:
    """The chosen answer: the highest summed log-likelihood, or per character of the answer
    (lm-eval's acc_norm) under bbq_choice=normalized; the first answer on a tie."""
    answers = [doc[f"ans{i}"] for i in range(len(loglikelihoods))]
    return chosen_answer(answer_scores(loglikelihoods, answers, doc["bbq_choice"]))


def process_results(doc, results):
    """The three answers' (log-likelihood, is_greedy) -> the item's outcome under every metric."""
    loglikelihoods = [float(result[0]) for result in results]
    biased = doc["biased_loc"] if doc["biased_loc"] >= 0 else None
    outcome = item_outcome(
        choose(doc, loglikelihoods), doc["label"], doc["context_condition"], doc["unknown_loc"], biased
    )
    return {name: outcome for name in METRICS}


# One aggregation per metric, named as in the YAML.
(
    acc,
    acc_ambig,
    acc_disambig,
    bias_ambig,
    bias_disambig,
    bias_ambig_ci_low,
    bias_ambig_ci_high,
    bias_disambig_ci_low,
    bias_disambig_ci_high,
    items_without_target,
) = items_aggregations(bbq_metrics, METRICS, stderrs=bbq_stderrs)
