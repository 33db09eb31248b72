"""Options shared by several commands, declared once."""

from __future__ import annotations

import typer

from simlm_cli.device import Precision

Device = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N (under torchrun: this rank's GPU).")
PrecisionOpt = typer.Option(
    Precision.auto,
    "--precision",
    help="auto: bf16 on CUDA (fp16 where bf16 is absent) and on CPUs with AMX/AVX512-BF16, else fp32.",
)
DryRun = typer.Option(False, "--dry-run", help="Shrink the work to a few items, for smoke tests.")
Model = typer.Option(
    None,
    "--model",
    "-m",
    help="HF model directory or hub name. Default: sentence-transformers/all-MiniLM-L6-v2 (embedded weights).",
)
Pooling = typer.Option(None, "--pooling", help="cls (SimLM) or mean. Default: the model's own, else cls.")
Normalize = typer.Option(
    None, "--normalize/--no-normalize", help="L2-normalise vectors. Default: the model's own, else on."
)
QueryMaxLength = typer.Option(None, "--query-max-length", help="Default: the model's own, else 32.")
PassageMaxLength = typer.Option(None, "--passage-max-length", help="Default: the model's own, else 144.")
PassageFormat = typer.Option(
    None,
    "--passage-format",
    help="pair: tokenize (title, text) as the paper does; concat: title + ' ' + text as MTEB does. "
    "Default: concat for sentence-transformers models, else pair.",
)
BatchSize = typer.Option(None, "--batch-size", min=1, help="Texts per forward pass. Default: 16 on CPU, 256 on GPU.")
