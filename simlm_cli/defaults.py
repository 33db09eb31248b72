"""Defaults several layers share (flags, library configs, models), each written here once. The encoder's own
(pooling, lengths, passage layout) are the paper's, `simlm_cli.models.settings.PAPER_SETTINGS`."""

SEED = 42  # training, negative sampling, the significance tests' resamples
PAIRS_PER_BATCH = 32  # cross-encoder inference: (query, passage) pairs per forward pass
