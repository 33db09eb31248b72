"""`simlm env`: what a bug report needs (versions, CPU features, GPUs, Java, what `auto` picks)."""

from __future__ import annotations

import typer

from simlm_cli.commands import options


def env(
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout, for machines."),
) -> None:
    """Print versions (simlm, Python, torch, transformers, sentence-transformers, faiss, pyserini, Java), CPU
    features, CUDA devices and the device and precision `auto` picks here: paste it into a bug report."""
    import json

    from simlm_cli.environment import collect, render

    info = collect()
    typer.echo(json.dumps(info, indent=2) if json_out else render(info))


register = options.registrar(
    env, "Versions, CPU features, GPUs, Java: for bug reports.", options.example("simlm env --json")
)
