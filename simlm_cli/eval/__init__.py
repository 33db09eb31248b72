"""Evaluation of runs against qrels."""

from simlm_cli.defaults import SEED

# The defaults of `simlm evaluate`'s significance tests (`compare.py`), here so that the command's flags (and
# `simlm --help`) load without numpy.
DEFAULT_RESAMPLES = 10_000
DEFAULT_SEED = SEED
