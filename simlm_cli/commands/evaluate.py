"""`simlm evaluate`: a run against qrels with pytrec_eval; a table on stderr, JSON on stdout."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from simlm_cli.commands import options
from simlm_cli.io.qrels import QrelsFormat
from simlm_cli.io.runs import RunFormat

PAPER_METRICS = ["mrr@10", "recall@50", "recall@1000", "ndcg@10"]


def evaluate(
    qrels: Path = typer.Option(..., "--qrels", help="BEIR qrels TSV (with header) or TREC qrels."),
    run: Path = typer.Option(..., "--run", "-r", help="TREC or MS MARCO run."),
    metric: list[str] = typer.Option(
        None,
        "--metric",
        "-M",
        autocompletion=options.complete_metric,
        help="Repeatable: ndcg@10, mrr@10, recall@100, map, p@10, ... Default: the paper's four.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object {metric: value} on stdout."),
    per_query: Path = typer.Option(None, "--per-query", help="Write per-query values (TSV: metric, qid, value)."),
    relevance_level: int = typer.Option(
        1, "--relevance-level", help="Grade >= this counts as relevant in binary metrics (TREC DL: 2)."
    ),
    run_format: RunFormat = typer.Option(RunFormat.auto, "--run-format", help="Force the run format."),
    qrels_format: QrelsFormat = options.QrelsFormatOpt,
    ignore_unjudged: bool = typer.Option(
        False, "--ignore-unjudged", help="Skip run queries that the qrels do not judge (otherwise an error)."
    ),
) -> None:
    """Score a run: judged queries missing from the run count as 0; MRR@k is cut at k as trec_eval does."""
    from simlm_cli.io.files import check_output_file
    from simlm_cli.pipeline.evaluate import evaluate_run, render_table

    check_output_file(per_query)  # before reading the run
    names = metric or PAPER_METRICS
    means, per_query_values, counts = evaluate_run(
        str(qrels), str(run), names, relevance_level, run_format, ignore_unjudged, qrels_format
    )
    render_table(str(run), means, counts)
    if per_query is not None:
        from simlm_cli.io.files import atomic_output

        with atomic_output(per_query) as handle:
            for qid, values in per_query_values.items():
                for name in names:
                    handle.write(f"{name}\t{qid}\t{values[name]:.6f}\n")
    if json_out:
        typer.echo(json.dumps({name: round(value, 6) for name, value in means.items()}))


register = options.registrar(
    evaluate,
    "Run + qrels -> nDCG, MRR, recall... (pytrec_eval).",
    options.example("simlm evaluate --qrels qrels/test.tsv --run run.trec -M ndcg@10 -M recall@100"),
)
