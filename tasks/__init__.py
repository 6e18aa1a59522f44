"""Harness task configs (YAML) shipped with lm-eval-bias; installed as ``lm_eval_bias.tasks``."""
