"""Scoring algorithms (causal log-probabilities, masked pseudo-log-likelihood), each usable without the harness."""
