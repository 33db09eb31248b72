"""The built-in pretraining objectives of `simlm pretrain`, one module each, registered as entry points.

They import only `simlm_cli.api`, the public plugin API a third-party objective uses too (see its docstring), and
are registered in pyproject.toml's `simlm.objectives` group.
"""
