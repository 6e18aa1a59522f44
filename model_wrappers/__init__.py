"""Harness model classes (lm-eval LM subclasses); installed as ``lm_eval_bias.model_wrappers``."""
