"""Evaluate a run file against a qrels file."""

from __future__ import annotations

from simlm_cli.errors import InputError
from simlm_cli.eval.metrics import evaluate, parse_metric
from simlm_cli.io.qrels import QrelsFormat, read_qrels
from simlm_cli.io.runs import RunFormat, read_run


def evaluate_run(
    qrels_path: str,
    run_path: str,
    metric_names: list[str],
    relevance_level: int = 1,
    run_format: RunFormat = RunFormat.auto,
    ignore_unjudged: bool = False,
    qrels_format: QrelsFormat = QrelsFormat.auto,
) -> tuple[dict[str, float], dict[str, dict[str, float]], dict[str, int]]:
    """Means, per-query values, and counts (judged, in run, missing, skipped)."""
    from simlm_cli.console import warn

    metrics = [parse_metric(name) for name in metric_names]
    qrels = read_qrels(qrels_path, qrels_format)
    run = read_run(run_path, run_format)
    unjudged = [qid for qid in run.scores if qid not in qrels.judgments]
    if unjudged and not ignore_unjudged:
        qid = unjudged[0]
        raise InputError(
            run_path,
            f"query {qid!r} is not judged in {qrels_path} ({len(unjudged)} such queries); "
            "pass --ignore-unjudged to skip them",
            line=run.first_line[qid],
        )
    missing = [qid for qid in qrels.judgments if qid not in run.scores]
    if missing:
        warn(f"{len(missing)} of {len(qrels)} judged queries are not in the run; they score 0")
    means, per_query = evaluate(qrels.judgments, run.scores, metrics, relevance_level)
    counts = {"judged": len(qrels), "missing": len(missing), "skipped_unjudged": len(unjudged)}
    return means, per_query, counts


def render_table(run_path: str, means: dict[str, float], counts: dict[str, int]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from simlm_cli.console import console

    console.print(f"{escape(run_path)}: {counts['judged']} judged queries, {counts['missing']} missing from the run")
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in means.items():
        table.add_row(name, f"{value:.4f}")
    console.print(table)
