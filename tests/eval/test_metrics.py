"""simlm_cli.eval.metrics: values computed by hand on tiny qrels and runs, and where pytrec_eval needs help."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from simlm_cli.errors import InputError, SimlmError
from simlm_cli.eval.metrics import Metric, evaluate, parse_metric
from simlm_cli.pipeline.evaluate import evaluate_run


def scores(*names: str) -> dict[str, float]:
    """A ranking in the given order (first is best), with distinct descending scores."""
    return {name: float(len(names) - i) for i, name in enumerate(names)}


def means(qrels, run, *names: str, relevance_level: int = 1) -> dict[str, float]:
    return evaluate(qrels, run, [parse_metric(n) for n in names], relevance_level)[0]


# -- parsing ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, measure, key, cutoff",
    [
        ("ndcg@10", "ndcg_cut.10", "ndcg_cut_10", None),
        ("NDCG@10", "ndcg_cut.10", "ndcg_cut_10", None),
        ("ndcg", "ndcg", "ndcg", None),
        ("mrr@10", "recip_rank", "recip_rank", 10),
        ("recip_rank", "recip_rank", "recip_rank", None),
        ("mrr", "recip_rank", "recip_rank", None),
        ("recall@100", "recall.100", "recall_100", None),
        ("R@5", "recall.5", "recall_5", None),
        ("p@10", "P.10", "P_10", None),
        ("precision@3", "P.3", "P_3", None),
        ("map", "map", "map", None),
        ("map@10", "map_cut.10", "map_cut_10", None),
        ("success@1", "success.1", "success_1", None),
    ],
)
def test_parse_metric(name: str, measure: str, key: str, cutoff: int | None) -> None:
    assert parse_metric(name) == Metric(name.lower(), measure, key, cutoff)  # lower case: the JSON key (issue 21)


@pytest.mark.parametrize("name", ["bleu", "ndcg@0", "ndcg@", "mrr@ten", "recall@-1", "", "ndcg@10x"])
def test_unknown_metric(name: str) -> None:
    with pytest.raises(SimlmError, match="unknown metric"):
        parse_metric(name)


@pytest.mark.parametrize("name", ["recall", "p", "success"])
def test_metric_needing_a_cutoff(name: str) -> None:
    with pytest.raises(SimlmError, match="needs a cut-off"):
        parse_metric(name)


# -- values ----------------------------------------------------------------------------------------------------
def test_mrr_at_10_ignores_a_hit_at_rank_11() -> None:
    qrels = {"q": {"hit": 1}}
    run = {"q": scores(*[f"miss{i:02d}" for i in range(10)], "hit")}
    got = means(qrels, run, "mrr@10", "mrr", "mrr@11")
    assert got["mrr@10"] == 0.0  # pytrec_eval's recip_rank.10 would say 1/11
    assert got["mrr"] == pytest.approx(1 / 11)
    assert got["mrr@11"] == pytest.approx(1 / 11)


def test_mrr_hand_computed_mean() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 1}}
    run = {"q1": scores("a", "x"), "q2": scores("x", "y", "b"), "q3": scores("x", "y")}
    assert means(qrels, run, "mrr@10")["mrr@10"] == pytest.approx((1 + 1 / 3 + 0) / 3)


def test_ties_follow_trec_eval_order() -> None:
    # Equal scores: trec_eval ranks by score descending, then document id descending, so "b" precedes "a".
    tied = {"q": {"a": 1.0, "b": 1.0, "c": 0.5}}
    assert means({"q": {"a": 1}}, tied, "mrr@10", "mrr")["mrr@10"] == pytest.approx(0.5)
    assert means({"q": {"a": 1}}, tied, "mrr")["mrr"] == pytest.approx(0.5)  # pytrec_eval agrees uncut
    assert means({"q": {"b": 1}}, tied, "mrr@10")["mrr@10"] == pytest.approx(1.0)
    # The cut at k keeps the tie-winner: with k = 1 only "b" survives.
    assert means({"q": {"a": 1}}, tied, "mrr@1")["mrr@1"] == 0.0
    assert means({"q": {"b": 1}}, tied, "mrr@1")["mrr@1"] == 1.0


def test_ties_between_numeric_looking_ids_compare_as_strings() -> None:
    tied = {"q": {"9": 1.0, "10": 1.0}}  # "9" > "10" as strings, so "9" ranks first
    assert means({"q": {"10": 1}}, tied, "mrr@10")["mrr@10"] == pytest.approx(0.5)


def test_msmarco_runs_rank_by_negative_rank() -> None:
    run = {"q": {"x": -1.0, "y": -2.0, "a": -3.0}}
    assert means({"q": {"a": 1}}, run, "mrr@10", "mrr@2") == {"mrr@10": pytest.approx(1 / 3), "mrr@2": 0.0}


def test_missing_judged_query_scores_zero_and_is_averaged_in() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    run = {"q1": scores("a")}
    mean, per_query = evaluate(qrels, run, [parse_metric("recall@10"), parse_metric("mrr@10")])
    assert mean == {"recall@10": 0.5, "mrr@10": 0.5}
    assert per_query == {"q1": {"recall@10": 1.0, "mrr@10": 1.0}, "q2": {"recall@10": 0.0, "mrr@10": 0.0}}


def test_unjudged_run_queries_are_left_out() -> None:
    qrels = {"q1": {"a": 1}}
    run = {"q1": scores("a"), "unjudged": scores("a")}
    mean, per_query = evaluate(qrels, run, [parse_metric("mrr@10")])
    assert mean == {"mrr@10": 1.0}
    assert list(per_query) == ["q1"]


def test_relevance_level_changes_recall_for_graded_qrels() -> None:
    qrels = {"q": {"a": 2, "b": 1, "c": 0}}
    finds_b = {"q": scores("b", "c", "x")}
    finds_a = {"q": scores("a", "c", "x")}
    assert means(qrels, finds_b, "recall@10")["recall@10"] == pytest.approx(0.5)
    assert means(qrels, finds_b, "recall@10", relevance_level=2)["recall@10"] == 0.0
    assert means(qrels, finds_a, "recall@10")["recall@10"] == pytest.approx(0.5)
    assert means(qrels, finds_a, "recall@10", relevance_level=2)["recall@10"] == 1.0
    assert means(qrels, finds_b, "mrr@10", relevance_level=2)["mrr@10"] == 0.0


def test_ndcg_uses_grades_as_gains() -> None:
    qrels = {"q": {"a": 2, "b": 1}}
    run = {"q": scores("b", "a")}
    dcg = 1 / math.log2(2) + 2 / math.log2(3)
    ideal = 2 / math.log2(2) + 1 / math.log2(3)
    got = means(qrels, run, "ndcg@10", "ndcg@1")
    assert got["ndcg@10"] == pytest.approx(dcg / ideal)
    assert got["ndcg@1"] == pytest.approx(1 / 2)


def test_map_precision_success() -> None:
    qrels = {"q": {"a": 1, "b": 1}}
    run = {"q": scores("a", "x", "b")}
    got = means(qrels, run, "map", "map@2", "p@2", "success@1", "recall@2")
    assert got["map"] == pytest.approx((1 + 2 / 3) / 2)
    assert got["map@2"] == pytest.approx(1 / 2)
    assert got["p@2"] == pytest.approx(1 / 2)
    assert got["success@1"] == 1.0
    assert got["recall@2"] == pytest.approx(1 / 2)


def test_keys_are_the_names_as_given_in_lower_case() -> None:
    """Issue 21: `--metric NDCG@10` kept the upper case as its JSON key."""
    qrels = {"q": {"a": 1}}
    names = ["NDCG@10", "MRR@10", "R@2", "recip_rank", "Map"]
    mean, per_query = evaluate(qrels, {"q": scores("a")}, [parse_metric(n) for n in names])
    assert list(mean) == [name.lower() for name in names]
    assert set(per_query["q"]) == {name.lower() for name in names}
    assert all(value == 1.0 for value in mean.values())


# -- evaluate_run: files in, one-line errors out ---------------------------------------------------------------
@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\ta\t1\nq2\tb\t1\n")
    run = tmp_path / "run.trec"
    run.write_text("q1 Q0 a 1 2.0 t\nq1 Q0 x 2 1.0 t\nq9 Q0 a 1 3.0 t\n")
    return qrels, run


def test_evaluate_run_refuses_unjudged_queries(files: tuple[Path, Path]) -> None:
    qrels, run = files
    with pytest.raises(InputError) as caught:
        evaluate_run(str(qrels), str(run), ["mrr@10"])
    assert str(caught.value).startswith(f"{run}:3: query 'q9' is not judged in {qrels}")
    assert "--ignore-unjudged" in str(caught.value)


def test_evaluate_run_ignore_unjudged(files: tuple[Path, Path]) -> None:
    qrels, run = files
    mean, per_query, counts = evaluate_run(str(qrels), str(run), ["mrr@10"], ignore_unjudged=True)
    assert mean == {"mrr@10": 0.5}
    assert per_query == {"q1": {"mrr@10": 1.0}, "q2": {"mrr@10": 0.0}}
    assert counts == {"judged": 2, "missing": 1, "skipped_unjudged": 1}


def test_evaluate_run_checks_metrics_first(files: tuple[Path, Path]) -> None:
    qrels, _ = files
    with pytest.raises(SimlmError, match="unknown metric"):
        evaluate_run(str(qrels), "/nonexistent/run.trec", ["mrr@10", "bleu@4"])


def test_cut_offs_are_bounded():
    """pytrec_eval wraps a cut-off past C's integers round: ndcg@9223372036854775808 scored 0.0 (issue 10, item 10)."""
    from simlm_cli.eval.metrics import MAX_CUTOFF, evaluate, parse_metric

    for name in ("ndcg@9223372036854775808", f"recall@{MAX_CUTOFF + 1}", "mrr@99999999999"):
        with pytest.raises(SimlmError, match="is too large"):
            parse_metric(name)
    qrels = {"q1": {"d1": 2, "d2": 1}}
    run = {"q1": {"d3": 0.9, "d1": 0.5, "d2": 0.1}}
    exact = evaluate(qrels, run, [parse_metric("ndcg@3")])[0]["ndcg@3"]
    assert evaluate(qrels, run, [parse_metric(f"ndcg@{MAX_CUTOFF}")])[0][f"ndcg@{MAX_CUTOFF}"] == pytest.approx(exact)


# -- issue 21, item 4: names in lower case, relevance levels from 1 -------------------------------------------------
def test_evaluate_run_keys_metrics_by_their_lower_case_names_once(files: tuple[Path, Path]) -> None:
    qrels, run = files
    mean, per_query, _ = evaluate_run(str(qrels), str(run), ["MRR@10", " mrr@10", "NDCG@10"], ignore_unjudged=True)
    assert list(mean) == ["mrr@10", "ndcg@10"] and mean["mrr@10"] == 0.5
    assert set(per_query["q1"]) == {"mrr@10", "ndcg@10"}


@pytest.mark.parametrize("level", [0, -3])
def test_a_relevance_level_below_1_is_refused(level: int) -> None:
    """0 was pytrec_eval's TypeError; -3 scored nDCG@10 0.963 with MRR 0, exit 0."""
    with pytest.raises(SimlmError, match=rf"--relevance-level {level}: must be >= 1"):
        means({"q1": {"d1": 1}}, {"q1": scores("d1")}, "ndcg@10", relevance_level=level)
