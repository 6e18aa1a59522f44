"""One module per compression method; installed as ``lm_eval_bias.model_wrappers.quantizers``."""
