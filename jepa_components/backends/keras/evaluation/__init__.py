"""Frozen-feature evaluation: linear / k-NN probes and the attentive probe."""
