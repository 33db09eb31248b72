"""IR metrics with pytrec_eval underneath, made to agree with trec_eval where pytrec_eval does not.

- MRR@k: pytrec_eval accepts `recip_rank.10` and silently ignores the cut-off. We cut each ranking to its top k
  in trec_eval's order (score descending, then document id descending) and evaluate `recip_rank` on that.
- Averages run over every judged query: a query missing from the run scores 0 (pytrec_eval leaves it out).
- Binary metrics count a document relevant when its grade >= `relevance_level` (TREC DL uses 2); nDCG uses
  the grades themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from simlm_cli.errors import SimlmError

# user name -> (pytrec_eval measure, result key pattern, needs a run cut to the top k first)
_FAMILIES = {
    "ndcg": ("ndcg_cut", "ndcg_cut_{k}", "ndcg"),
    "recall": ("recall", "recall_{k}", None),
    "r": ("recall", "recall_{k}", None),
    "precision": ("P", "P_{k}", None),
    "p": ("P", "P_{k}", None),
    "map": ("map_cut", "map_cut_{k}", "map"),
    "mrr": ("recip_rank", "recip_rank", "recip_rank"),
    "recip_rank": ("recip_rank", "recip_rank", "recip_rank"),
    "success": ("success", "success_{k}", None),
}
# pytrec_eval passes cut-offs to C as integers: a larger one wraps around and silently scores 0.0.
MAX_CUTOFF = 1_000_000_000
_NAME = re.compile(r"^(?P<family>[a-z_]+)(?:@(?P<k>[1-9][0-9]*))?$")


@dataclass(frozen=True)
class Metric:
    name: str  # as the user wrote it, in lower case (NDCG@10 -> ndcg@10): the key in the JSON output
    measure: str  # what pytrec_eval is asked for
    key: str  # the key pytrec_eval's results use
    cutoff: int | None  # rankings are cut to this depth first (MRR@k)


def parse_metric(name: str) -> Metric:
    """A metric name (any case) as what pytrec_eval computes; `Metric.name` is the name in lower case."""
    match = _NAME.match(name.strip().lower())
    family = match and _FAMILIES.get(match["family"])
    if not family:
        known = "ndcg@k, mrr@k, recall@k (r@k), precision@k (p@k), map, map@k, success@k, ndcg, mrr"
        raise SimlmError(f"--metric {name!r}: unknown metric; use one of {known}")
    k = int(match["k"]) if match["k"] else None
    if k is not None and k > MAX_CUTOFF:
        raise SimlmError(f"--metric {name!r}: cut-off {k} is too large (at most {MAX_CUTOFF:,})")
    measure, key, uncut = family
    name = name.strip().lower()
    if match["family"] in ("mrr", "recip_rank"):
        return Metric(name, "recip_rank", "recip_rank", k)
    if k is None:
        if uncut is None:
            raise SimlmError(f"--metric {name!r}: needs a cut-off, e.g. {match['family']}@100")
        return Metric(name, uncut, uncut, None)
    return Metric(name, f"{measure}.{k}", key.format(k=k), None)


def canonical_metric_names(names: list[str]) -> list[str]:
    """The metrics' names as results key them: lower case, each once, in the order given (unknown ones refused)."""
    return list(dict.fromkeys(parse_metric(name).name for name in names))


def _top_k(ranking: dict[str, float], k: int) -> dict[str, float]:
    ordered = sorted(ranking.items(), key=lambda item: (item[1], item[0]), reverse=True)
    return dict(ordered[:k])


def evaluate(
    qrels: dict[str, dict[str, int]],
    run: dict[str, dict[str, float]],
    metrics: list[Metric],
    relevance_level: int = 1,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Mean and per-query values of each metric over all judged queries."""
    import pytrec_eval

    if relevance_level < 1:  # 0 made pytrec_eval raise TypeError; -3 scored nDCG 0.963 with MRR 0
        raise SimlmError(
            f"--relevance-level {relevance_level}: must be >= 1 (the lowest grade that counts as relevant)"
        )
    per_query: dict[str, dict[str, float]] = {qid: {} for qid in qrels}
    run = {qid: ranking for qid, ranking in run.items() if qid in qrels}
    for cutoff in sorted({m.cutoff for m in metrics}, key=lambda c: c or 0):
        group = [m for m in metrics if m.cutoff == cutoff]
        view = run if cutoff is None else {qid: _top_k(r, cutoff) for qid, r in run.items()}
        evaluator = pytrec_eval.RelevanceEvaluator(qrels, {m.measure for m in group}, relevance_level=relevance_level)
        results = evaluator.evaluate(view)
        for qid in qrels:
            for metric in group:
                per_query[qid][metric.name] = float(results.get(qid, {}).get(metric.key, 0.0))
    means = {m.name: sum(v[m.name] for v in per_query.values()) / len(per_query) for m in metrics}
    return means, per_query
