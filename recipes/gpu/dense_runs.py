"""Dense runs of many models in ONE Python process, without faiss: for the GPU machine, where each `simlm` start
costs ~18 s and faiss cannot travel with the model (recipes/gpu/pretrain_ablation_gpu.sh):

    python recipes/gpu/dense_runs.py --corpus C --queries Q --split test=QRELS --split dev=QRELS \
        --output RUNS_DIR [--k 100] [--device auto] [--precision auto] [--dry-run] NAME=MODEL ...

For each NAME=MODEL: the corpus encoded as `simlm encode --model MODEL` would (its settings: the flags below, else
the model's simlm.json, ...), the judged queries of each split encoded, an exact inner-product top k with simlm's
torch search (`simlm search --search-backend torch`: the same ranking as faiss's flat search), written as
RUNS_DIR/NAME.trec (split test) and RUNS_DIR/NAME.SPLIT.trec (the others): the files recipes/lib.sh's
search_splits writes, so `pretrain_ablation.sh --from-runs` evaluates them as its own. The encoding flags are the
ablation's: [CLS] pooling, 32/144 tokens, title + text concatenated.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

from simlm_cli.dry_run import PASSAGES, QUERIES
from simlm_cli.io.corpus import iter_corpus
from simlm_cli.io.qrels import read_qrels
from simlm_cli.io.queries import read_queries
from simlm_cli.io.runs import write_run


def run_path(directory: Path, name: str, split: str) -> Path:
    return directory / (f"{name}.trec" if split == "test" else f"{name}.{split}.trec")


def model_runs(name: str, model: str, args: argparse.Namespace, passages: list, splits: dict) -> None:
    from simlm_cli.device import resolve_runtime
    from simlm_cli.index.torch_search import TorchFlatSearch
    from simlm_cli.models.biencoder import BiEncoder
    from simlm_cli.models.settings import resolve_settings

    started = time.perf_counter()
    settings = resolve_settings(model, pooling="cls", passage_format="concat", query_max_length=32,
                                passage_max_length=144)  # fmt: skip
    runtime = resolve_runtime(args.device, args.precision)
    encoder = BiEncoder.load(settings, runtime)
    search = TorchFlatSearch(encoder.encode_passages(passages), str(runtime.device))
    docids = [p.id for p in passages]
    for split, queries in splits.items():
        qids = list(queries)
        scores, rows = search.search(encoder.encode_queries([queries[q] for q in qids]), args.k)
        rankings = ((q, [docids[r] for r in rows[i]], scores[i].tolist()) for i, q in enumerate(qids))
        write_run(run_path(args.output, name, split), rankings)
    print(f"dense_runs.py: {name} ({model}): {time.perf_counter() - started:.1f} s", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--queries", required=True)
    parser.add_argument("--split", action="append", required=True, metavar="NAME=QRELS")
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--dry-run", action="store_true", help="As simlm's: the first passages and queries only.")
    parser.add_argument("models", nargs="+", metavar="NAME=MODEL")
    args = parser.parse_args()
    pairs = [m.partition("=")[::2] for m in args.models]
    if any(not name or not model for name, model in pairs):
        sys.exit(f"dense_runs.py: expected NAME=MODEL pairs, got {args.models}")
    passages = list(itertools.islice(iter_corpus(args.corpus), PASSAGES if args.dry_run else None))
    queries = read_queries(args.queries)
    splits = {}
    for pair in args.split:
        split, _, qrels = pair.partition("=")
        judged = [q for q in queries if q in read_qrels(qrels).judgments]
        splits[split] = {q: queries[q] for q in judged[: QUERIES if args.dry_run else None]}
    args.output.mkdir(parents=True, exist_ok=True)
    for name, model in pairs:
        model_runs(name, model, args, passages, splits)


if __name__ == "__main__":
    main()
