"""Evaluation of runs against qrels."""
