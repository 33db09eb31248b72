"""`simlm evaluate`: runs against qrels with pytrec_eval; with several runs, paired tests of each against a baseline.
Tables on stderr, JSON on stdout."""

from __future__ import annotations

import json

import typer

from simlm_cli.commands import options
from simlm_cli.flags import command_from
from simlm_cli.options.evaluate import EvaluateConfig


def evaluate(config: EvaluateConfig) -> None:
    """Score runs: judged queries missing from a run count as 0; MRR@k is cut at k as trec_eval does. With several
    runs, each is compared with the baseline on every metric, query by query (a paired bootstrap 95% interval of the
    mean difference, paired randomization and bootstrap tests, Holm's correction over all comparisons)."""
    from simlm_cli.pipeline.evaluate import run_evaluate

    result = run_evaluate(config)
    if config.json_summary:
        typer.echo(json.dumps(result))


register = options.registrar(
    command_from(EvaluateConfig, evaluate),
    "Run + qrels -> nDCG, MRR, recall... (pytrec_eval).",
    options.example("simlm evaluate --qrels qrels/test.tsv --run run.trec -M ndcg@10 -M recall@100"),
)
