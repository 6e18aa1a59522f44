"""Measure how model compression changes social bias, as an lm-evaluation-harness plugin."""

__version__ = "0.1.0"
