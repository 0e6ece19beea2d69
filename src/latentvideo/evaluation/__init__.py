"""Evaluation: the benchmark, its metrics, baselines, digit classifier and PPL."""
