"""Pretraining (`simlm pretrain`): the objectives' base class and shared parts, word masking, the plugin registry
(`simlm.objectives` entry points; the objectives themselves live in plugins/simlm_objectives/) and the text data."""
