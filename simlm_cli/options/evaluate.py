"""`simlm evaluate`'s config: runs against qrels, and with several runs paired comparisons with a baseline."""

from __future__ import annotations

from dataclasses import dataclass

from simlm_cli.eval import DEFAULT_RESAMPLES, DEFAULT_SEED
from simlm_cli.flags import flag
from simlm_cli.io.qrels import QrelsFormat
from simlm_cli.io.runs import RunFormat
from simlm_cli.options.shared import complete_from, qrels_format_flag, run_format_flag

PAPER_METRICS = ["mrr@10", "recall@50", "recall@1000", "ndcg@10"]
METRIC_EXAMPLES = (
    "ndcg@10", "mrr@10", "recall@100", "recall@1000", "r@100", "map", "map@1000", "p@10", "success@10", "ndcg", "mrr",
)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class EvaluateConfig:
    qrels: str = flag("--qrels", help="BEIR qrels TSV (with header) or TREC qrels.")
    runs: list[str] = flag("--run", "-r", help="TREC or MS MARCO run. Repeat it to compare runs with the baseline run.")
    baseline: str | None = flag(
        "--baseline",
        default=None,
        help="With several --run: the run (as given, or the same file) the others are compared with. Default: the first.",
    )
    resamples: int = flag(
        "--resamples",
        default=DEFAULT_RESAMPLES,
        min=1,
        help="With several --run: bootstrap and randomization resamples.",
    )
    seed: int = flag("--seed", default=DEFAULT_SEED, min=0, help="With several --run: the resamples' random seed.")
    metrics: list[str] = flag(
        "--metric",
        "-M",
        default=PAPER_METRICS,
        autocompletion=complete_from(METRIC_EXAMPLES),
        help="Repeatable: ndcg@10, mrr@10, recall@100, map, p@10, ... Default: the paper's four.",
    )
    json_summary: bool = flag(
        "--json",
        default=False,
        help="Print one JSON object on stdout: {metric: value}; with several runs {runs: {run: {metric: value}}, "
        "comparisons: [...], comparison_settings: {...}}.",
    )
    per_query: str | None = flag(
        "--per-query",
        default=None,
        help="Write per-query values (TSV: metric, qid, value; with several runs: run first).",
    )
    relevance_level: int = flag(
        "--relevance-level",
        default=1,
        min=1,
        help="Grade >= this counts as relevant in binary metrics (TREC DL: 2).",
    )
    run_format: RunFormat = run_format_flag()
    qrels_format: QrelsFormat = qrels_format_flag()
    ignore_unjudged: bool = flag(
        "--ignore-unjudged", default=False, help="Skip run queries that the qrels do not judge (otherwise an error)."
    )
