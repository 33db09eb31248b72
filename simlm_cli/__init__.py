"""simlm: dense passage retrieval the SimLM way, as a command-line toolkit."""

__version__ = "0.1.0"
