"""Pure metric functions: sentence scores in, bias metrics out. No model, no harness."""
