"""One module per subcommand; each exposes `register(app)` and stays thin over `simlm_cli.pipeline`."""
