"""`simlm mine`'s config: hard negatives for training queries, from a run or an index."""

from __future__ import annotations

from dataclasses import dataclass

from simlm_cli.defaults import SEED
from simlm_cli.errors import SimlmError
from simlm_cli.flags import flag, group
from simlm_cli.io.corpus import CorpusFormat
from simlm_cli.io.runs import RunFormat
from simlm_cli.options.shared import (
    BM25Search,
    InputFormats,
    QueryEncoding,
    corpus_format_flag,
    dry_run_flag,
    run_format_flag,
)


def parse_rank_range(text: str | None) -> tuple[int, int | None]:
    """`START:END` (1-based, inclusive; either side may be empty) -> (start, end or None)."""
    if not text:
        return 1, None
    start_text, sep, end_text = text.partition(":")
    try:
        start = int(start_text) if start_text.strip() else 1
        end = int(end_text) if end_text.strip() else None
    except ValueError:
        start = end = -1
    if not sep or start < 1 or (end is not None and end < start):
        raise SimlmError(f"--rank-range {text!r}: expected START:END with 1 <= START <= END (e.g. 3:200)")
    return start, end


@dataclass(frozen=True, kw_only=True)
class MineConfig:
    queries: str = flag("--queries", "-q", help="Training queries: BEIR queries.jsonl or TSV (.gz ok).")
    qrels: str = flag("--qrels", help="Training judgments (BEIR TSV or TREC qrels).")
    output: str = flag("--output", "-o", help="Training file to write (JSONL, .gz ok; atomic).")
    run: str | None = flag(
        "--run", "-r", default=None, help="TREC or MS MARCO run of the training queries, grouped by query (streamed)."
    )
    index: list[str] | None = flag(
        "--index",
        "-i",
        default=None,
        help="Or: an index directory to search (dense or BM25); repeat for a dense index's parts.",
    )
    run_format: RunFormat = run_format_flag()
    depth: int = flag("--depth", default=200, min=1, help="Candidates considered per query (the top of the run).")
    min_relevance: int = flag(
        "--min-relevance",
        default=1,
        help="Grade >= this is a positive; judged documents below it are never negatives.",
    )
    # 1-based, inclusive; None: to the depth
    rank_range: tuple[int, int | None] = flag(
        "--rank-range",
        default=(1, None),
        cli_type=str,
        convert=parse_rank_range,
        help="Keep negatives ranked START:END (1-based, inclusive), e.g. 3:200.",
    )
    score_margin: float | None = flag(
        "--score-margin",
        default=None,
        min=0.0,
        help="Drop negatives scoring within this of the best retrieved positive.",
    )
    max_negatives: int | None = flag("--max-negatives", default=None, min=0, help="Keep at most N, best-ranked first.")
    random_negatives: int = flag(
        "--random-negatives", default=0, min=0, help="Add K random corpus passages per query (score null)."
    )
    corpus: str | None = flag("--corpus", "-c", default=None, help="Corpus whose ids random negatives come from.")
    corpus_format: CorpusFormat = corpus_format_flag()
    seed: int = flag("--seed", default=SEED, help="Random negatives are a function of the seed and the query id.")
    # every candidate gets a score (a teacher for `simlm distill`): see Miner.mine
    teacher: bool = flag(
        "--teacher",
        default=False,
        help="Keep the run's scores as teacher scores for `simlm distill` (e.g. of a `simlm fuse` run): a positive "
        "the run missed, or a random negative, gets the query's lowest run score.",
    )
    json_summary: bool = flag("--json", default=False, help="Also print the summary as one JSON object on stdout.")
    dense: QueryEncoding = group(QueryEncoding)  # --index (dense) only
    bm25: BM25Search = group(BM25Search)  # --index (BM25) only
    formats: InputFormats = group(InputFormats)
    dry_run: bool = dry_run_flag()
