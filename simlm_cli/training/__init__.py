"""Pretraining and (later) fine-tuning machinery: objectives registry, data, shared trainer."""
