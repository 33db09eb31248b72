"""Evaluate a run file against a qrels file."""

from __future__ import annotations

from collections.abc import Iterator

from simlm_cli.errors import InputError
from simlm_cli.eval.compare import CI_METHOD, TESTS, Comparison, compare_runs
from simlm_cli.eval.metrics import Metric, canonical_metric_names, evaluate, parse_metric
from simlm_cli.io.qrels import Qrels, QrelsFormat, read_qrels
from simlm_cli.io.runs import RunFormat, read_run
from simlm_cli.options.evaluate import EvaluateConfig

ALPHA = 0.05  # the table's marker: significant at this level after Holm
Scores = tuple[dict[str, float], dict[str, dict[str, float]], dict[str, int]]


def evaluate_run(
    qrels_path: str,
    run_path: str,
    metric_names: list[str],
    relevance_level: int = 1,
    run_format: RunFormat = RunFormat.auto,
    ignore_unjudged: bool = False,
    qrels_format: QrelsFormat = QrelsFormat.auto,
) -> Scores:
    """Means, per-query values, and counts (judged, in run, missing, skipped)."""
    runs = evaluate_runs(
        qrels_path, [run_path], metric_names, relevance_level, run_format, ignore_unjudged, qrels_format
    )
    return next(runs)[1]


def evaluate_runs(
    qrels_path: str,
    run_paths: list[str],
    metric_names: list[str],
    relevance_level: int = 1,
    run_format: RunFormat = RunFormat.auto,
    ignore_unjudged: bool = False,
    qrels_format: QrelsFormat = QrelsFormat.auto,
) -> Iterator[tuple[str, Scores]]:
    """Each run's path and scores, in order, the qrels read once; a run is read when its turn comes, so that its
    warnings come just before whatever the caller prints of it."""
    metrics = [parse_metric(name) for name in canonical_metric_names(metric_names)]  # -M NDCG@10 -M ndcg@10: one
    qrels = read_qrels(qrels_path, qrels_format)
    for run_path in run_paths:
        yield run_path, _score_run(qrels, qrels_path, run_path, metrics, relevance_level, run_format, ignore_unjudged)


def _score_run(
    qrels: Qrels,
    qrels_path: str,
    run_path: str,
    metrics: list[Metric],
    relevance_level: int,
    run_format: RunFormat,
    ignore_unjudged: bool,
) -> Scores:
    from simlm_cli.console import warn

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


def check_runs(run_paths: list[str], baseline: str | None) -> str:
    """The baseline's label among the runs (the first run unless `--baseline` names one, by label or by file)."""
    import os

    from simlm_cli.errors import SimlmError

    def same(a: str, b: str) -> bool:  # as typed, or one file by two names (./a.trec and a.trec, a link)
        return a == b or (os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b))

    for i, path in enumerate(run_paths):
        if any(same(earlier, path) for earlier in run_paths[:i]):
            raise SimlmError(f"--run {path!r} is given twice")
    if baseline is None:
        return run_paths[0]
    if len(run_paths) < 2:
        raise SimlmError("--baseline needs two or more --run to compare")
    for path in run_paths:
        if same(baseline, path):
            return path
    raise SimlmError(f"--baseline {baseline!r} is not one of the runs: {', '.join(run_paths)}")


def compare_scores(
    per_query: dict[str, dict[str, dict[str, float]]], metric_names: list[str], baseline: str, resamples: int, seed: int
) -> list[Comparison]:
    """Each run against the baseline from `per_query[run][qid][metric]` (every judged query, 0 where a run lacks it)."""
    import numpy as np

    qids = list(per_query[baseline])
    vectors = {
        run: {name: np.array([values[qid][name] for qid in qids]) for name in metric_names}
        for run, values in per_query.items()
    }
    return compare_runs(vectors, baseline, resamples, seed)


def comparison_json(comparisons: list[Comparison], resamples: int, seed: int) -> dict[str, object]:
    """The `comparisons` and `comparison_settings` keys of `evaluate --json` with several runs."""

    def p(value: float) -> float:
        return float(f"{value:.6g}")

    rows = [
        {
            "baseline": c.baseline,
            "run": c.run,
            "metric": c.metric,
            "queries": c.queries,
            "baseline_mean": round(c.baseline_mean, 6),
            "run_mean": round(c.run_mean, 6),
            "difference": round(c.difference, 6),
            "ci95": [round(c.ci95[0], 6), round(c.ci95[1], 6)],
            "p_randomization": p(c.p_randomization),
            "p_bootstrap": p(c.p_bootstrap),
            "p_randomization_holm": p(c.p_randomization_holm),
            "p_bootstrap_holm": p(c.p_bootstrap_holm),
        }
        for c in comparisons
    ]
    settings = {"resamples": resamples, "seed": seed, "ci": CI_METHOD, "tests": list(TESTS), "correction": "holm"}
    return {"comparisons": rows, "comparison_settings": settings}


def significant(c: Comparison, alpha: float = ALPHA) -> bool:
    """Both tests reject at `alpha` after Holm's correction: the table's marker."""
    return c.p_randomization_holm < alpha and c.p_bootstrap_holm < alpha


COMPARISON_COLUMNS = (
    "run",
    "metric",
    "baseline",
    "run mean",
    "diff",
    "95% CI",
    "p rand",
    "p boot",
    "Holm rand",
    "Holm boot",
)


def render_comparisons(comparisons: list[Comparison], resamples: int, seed: int) -> None:
    from rich import box
    from rich.markup import escape
    from rich.measure import Measurement
    from rich.segment import Segments
    from rich.table import Table

    from simlm_cli.console import console

    first = comparisons[0]
    console.print(
        f"Paired comparisons with {escape(first.baseline)} over {first.queries} queries: difference = run - baseline; "
        f"95% CI: {CI_METHOD}; p: two-sided, paired randomization (rand) and paired bootstrap (boot) tests, "
        f"{resamples} resamples, seed {seed}; Holm over {len(comparisons)} comparisons per test; "
        f"* both Holm p < {ALPHA}"
    )
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    for name in COMPARISON_COLUMNS:
        table.add_column(name, justify="left" if name in ("run", "metric") else "right", no_wrap=True)
    table.add_column("")
    for c in comparisons:
        ps = (c.p_randomization, c.p_bootstrap, c.p_randomization_holm, c.p_bootstrap_holm)
        table.add_row(
            escape(c.run),
            c.metric,
            f"{c.baseline_mean:.4f}",
            f"{c.run_mean:.4f}",
            f"{c.difference:+.4f}",
            f"[{c.ci95[0]:+.4f}, {c.ci95[1]:+.4f}]",
            *(f"{value:.4f}" for value in ps),
            "*" if significant(c) else "",
        )
    # At its natural width, wider than the terminal if need be: figures cut to "0.0…" would be worse than a wrap.
    natural = Measurement.get(console, console.options.update_width(10_000), table).maximum
    console.print(Segments(console.render(table, console.options.update_width(max(console.width, natural)))), end="")


def run_evaluate(config: EvaluateConfig) -> dict[str, object]:
    """Score each run (a table on stderr each), write --per-query, and with several runs compare each with the
    baseline (a table on stderr); returns what --json prints: {metric: value}, or with several runs {runs,
    comparisons, comparison_settings}."""
    from simlm_cli.io.files import check_output_file

    labels = list(config.runs)
    baseline_label = check_runs(labels, config.baseline)
    check_output_file(config.per_query, [config.qrels, *config.runs])  # before reading the runs
    names = canonical_metric_names(config.metrics)  # lower case, each once: the keys of every output
    scores = {}
    for label, (means, per_query_values, counts) in evaluate_runs(
        config.qrels, labels, names, config.relevance_level, config.run_format, config.ignore_unjudged,
        config.qrels_format,
    ):  # fmt: skip
        render_table(label, means, counts)
        scores[label] = (means, per_query_values)
    if config.per_query is not None:
        _write_per_query(config.per_query, scores, names)
    if len(scores) == 1:
        return _rounded(scores[labels[0]][0])
    per_query = {label: values for label, (_, values) in scores.items()}
    comparisons = compare_scores(per_query, names, baseline_label, config.resamples, config.seed)
    render_comparisons(comparisons, config.resamples, config.seed)
    runs = {label: _rounded(means) for label, (means, _) in scores.items()}
    return {"runs": runs, **comparison_json(comparisons, config.resamples, config.seed)}


def _rounded(means: dict[str, float]) -> dict[str, float]:
    return {name: round(value, 6) for name, value in means.items()}


def _write_per_query(path: str, scores: dict[str, tuple], names: list[str]) -> None:
    """metric, qid, value per line; with several runs each line starts with the run."""
    from simlm_cli.io.files import atomic_output

    with atomic_output(path) as handle:
        for label, (_, per_query_values) in scores.items():
            prefix = f"{label}\t" if len(scores) > 1 else ""
            for qid, values in per_query_values.items():
                for name in names:
                    handle.write(f"{prefix}{name}\t{qid}\t{values[name]:.6f}\n")
