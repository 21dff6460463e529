"""Helpers shared by the tests: synthetic data, small checkpoints, process lookup. Not shipped."""
