"""`simlm evaluate`: runs against qrels with pytrec_eval; with several runs, paired tests of each against a baseline.
Tables on stderr, JSON on stdout."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from simlm_cli.commands import options
from simlm_cli.eval import DEFAULT_RESAMPLES, DEFAULT_SEED
from simlm_cli.io.qrels import QrelsFormat
from simlm_cli.io.runs import RunFormat

PAPER_METRICS = ["mrr@10", "recall@50", "recall@1000", "ndcg@10"]


def evaluate(
    qrels: str = typer.Option(..., "--qrels", help="BEIR qrels TSV (with header) or TREC qrels."),
    run: list[str] = typer.Option(
        ..., "--run", "-r", help="TREC or MS MARCO run. Repeat it to compare runs with the baseline run."
    ),
    baseline: str = typer.Option(
        None,
        "--baseline",
        help="With several --run: the run (as given, or the same file) the others are compared with. Default: the first.",
    ),
    resamples: int = typer.Option(
        DEFAULT_RESAMPLES, "--resamples", min=1, help="With several --run: bootstrap and randomization resamples."
    ),
    seed: int = typer.Option(DEFAULT_SEED, "--seed", min=0, help="With several --run: the resamples' random seed."),
    metric: list[str] = typer.Option(
        None,
        "--metric",
        "-M",
        autocompletion=options.complete_metric,
        help="Repeatable: ndcg@10, mrr@10, recall@100, map, p@10, ... Default: the paper's four.",
    ),
    json_out: bool = typer.Option(
        False,
        "--json",
        help="Print one JSON object on stdout: {metric: value}; with several runs {runs: {run: {metric: value}}, "
        "comparisons: [...], comparison_settings: {...}}.",
    ),
    per_query: Path = typer.Option(
        None, "--per-query", help="Write per-query values (TSV: metric, qid, value; with several runs: run first)."
    ),
    relevance_level: int = typer.Option(
        1, "--relevance-level", min=1, help="Grade >= this counts as relevant in binary metrics (TREC DL: 2)."
    ),
    run_format: RunFormat = typer.Option(RunFormat.auto, "--run-format", help="Force the run format."),
    qrels_format: QrelsFormat = options.QrelsFormatOpt,
    ignore_unjudged: bool = typer.Option(
        False, "--ignore-unjudged", help="Skip run queries that the qrels do not judge (otherwise an error)."
    ),
) -> None:
    """Score runs: judged queries missing from a run count as 0; MRR@k is cut at k as trec_eval does. With several
    runs, each is compared with the baseline on every metric, query by query (a paired bootstrap 95% interval of the
    mean difference, paired randomization and bootstrap tests, Holm's correction over all comparisons)."""
    from simlm_cli.eval.metrics import canonical_metric_names
    from simlm_cli.io.files import check_output_file
    from simlm_cli.pipeline.evaluate import check_runs, evaluate_runs, render_table

    labels = [str(path) for path in run]
    baseline_label = check_runs(labels, baseline)
    check_output_file(per_query, [qrels, *run])  # before reading the runs
    names = canonical_metric_names(metric or PAPER_METRICS)  # lower case, each once: the keys of every output
    scores = {}
    for label, (means, per_query_values, counts) in evaluate_runs(
        str(qrels), labels, names, relevance_level, run_format, ignore_unjudged, qrels_format
    ):
        render_table(label, means, counts)
        scores[label] = (means, per_query_values)
    if per_query is not None:
        _write_per_query(per_query, scores, names)
    if len(scores) == 1:
        if json_out:
            typer.echo(json.dumps(_rounded(scores[labels[0]][0])))
        return
    _compare(scores, names, baseline_label, resamples, seed, json_out)


def _rounded(means: dict[str, float]) -> dict[str, float]:
    return {name: round(value, 6) for name, value in means.items()}


def _write_per_query(path: Path, scores: dict[str, tuple], names: list[str]) -> None:
    """metric, qid, value per line; with several runs each line starts with the run."""
    from simlm_cli.io.files import atomic_output

    with atomic_output(path) as handle:
        for label, (_, per_query_values) in scores.items():
            prefix = f"{label}\t" if len(scores) > 1 else ""
            for qid, values in per_query_values.items():
                for name in names:
                    handle.write(f"{prefix}{name}\t{qid}\t{values[name]:.6f}\n")


def _compare(
    scores: dict[str, tuple], names: list[str], baseline: str, resamples: int, seed: int, json_out: bool
) -> None:
    from simlm_cli.pipeline.evaluate import compare_scores, comparison_json, render_comparisons

    per_query = {label: values for label, (_, values) in scores.items()}
    comparisons = compare_scores(per_query, names, baseline, resamples, seed)
    render_comparisons(comparisons, resamples, seed)
    if json_out:
        runs = {label: _rounded(means) for label, (means, _) in scores.items()}
        typer.echo(json.dumps({"runs": runs, **comparison_json(comparisons, resamples, seed)}))


register = options.registrar(
    evaluate,
    "Run + qrels -> nDCG, MRR, recall... (pytrec_eval).",
    options.example("simlm evaluate --qrels qrels/test.tsv --run run.trec -M ndcg@10 -M recall@100"),
)
