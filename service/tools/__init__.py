"""Offline tools behind scripts/: evaluation, feedback mining, the bundled local model."""
