"""Readers and writers for corpora, queries, qrels, runs and embedding streams."""
