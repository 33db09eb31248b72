"""`simlm mine`: hard negatives for training queries, from a run or an index, streamed into a training file."""

from __future__ import annotations

import json

import typer

from simlm_cli.commands import options
from simlm_cli.flags import command_from
from simlm_cli.options.mine import MineConfig


def mine(config: MineConfig) -> None:
    """Write one training line per judged query: its positives and hard negatives mined from a run or an index."""
    from simlm_cli.pipeline.mine import run_mine

    summary = run_mine(config)
    if config.json_summary:
        typer.echo(json.dumps(summary))


register = options.registrar(
    command_from(MineConfig, mine),
    "Run + qrels -> training file of hard negatives.",
    options.example("simlm mine --run bm25.trec --qrels qrels/train.tsv --queries queries.jsonl --output train.jsonl"),
)
