"""The built-in pretraining objectives of `simlm pretrain`, one module each, registered as entry points.

See `simlm_cli.training.pretraining.objective.Objective` for the interface and pyproject.toml's `simlm.objectives` group.
"""
