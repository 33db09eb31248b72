"""Real data: SciFact (shipped in simlm_cli/data) against published figures and against sentence-transformers.

Runs the issue's commands as a user types them (`$D` the shipped SciFact directory), through the installed `simlm`
script and bash.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1] / "simlm_cli" / "data" / "scifact"
CORPUS, QUERIES, QRELS = DATA / "corpus.jsonl", DATA / "queries.jsonl", DATA / "qrels" / "test.tsv"
BIN = Path(sys.executable).parent  # the environment's bin directory, where `pip install` put the `simlm` script
SIMLM = [str(BIN / "simlm")]
ENV = os.environ | {"HF_HUB_OFFLINE": "1", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "D": str(DATA)}

# Anserini's BEIR regression, SciFact test, BM25 flat (title + text as one field), k1=0.9 b=0.4.
ANSERINI_NDCG10, ANSERINI_R100 = 0.6789, 0.9253

pytestmark = pytest.mark.slow


def simlm(*args: str, cwd: Path) -> str:
    done = subprocess.run([*SIMLM, *args], cwd=cwd, capture_output=True, text=True, env=ENV)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def shell(script: str, cwd: Path, env: dict[str, str] | None = None, unset: tuple[str, ...] = ()) -> str:
    """Commands exactly as a user types them, in bash with `$D` set (and `env`, less `unset`); returns stdout."""
    full = {name: value for name, value in (ENV | (env or {})).items() if name not in unset}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, capture_output=True, text=True, env=full)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def evaluate(run: Path, cwd: Path) -> dict[str, float]:
    out = simlm("evaluate", "--qrels", str(QRELS), "--run", str(run), "--metric", "ndcg@10", "--metric", "mrr@10",
                "--metric", "recall@100", "--metric", "recall@1000", "--json", cwd=cwd)  # fmt: skip
    return json.loads(out)


@pytest.fixture(scope="session")
def bm25(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One BM25 index for the session, exactly as a user types it, with its test run and a train run (depth 200)."""
    work = tmp_path_factory.mktemp("bm25")
    shell(
        """
        simlm index --bm25 --corpus $D/corpus.jsonl --output idx/bm25
        simlm search --index idx/bm25 --queries $D/queries.jsonl --qrels $D/qrels/test.tsv --output runs/bm25.trec
        simlm search --index idx/bm25 --queries $D/queries.jsonl --qrels $D/qrels/train.tsv --k 200 --output runs/bm25.train.trec
        """,
        work,
    )
    return work


# The suite's settings of what `auto` means (tests/conftest.py): unset where a command must run as a user's does.
SUITE_DEFAULTS = ("SIMLM_PRECISION", "SIMLM_BACKEND")


@pytest.fixture(scope="session")
def minilm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded MiniLM, encoded and indexed once for the session, with its test and train runs, at simlm's real
    default (the suite's SIMLM_PRECISION and SIMLM_BACKEND unset): on the CPU, OpenVINO at bf16 where the CPU has
    it natively, else fp32."""
    work = tmp_path_factory.mktemp("minilm")
    shell(
        """
        simlm encode --corpus $D/corpus.jsonl | simlm index --output idx/minilm
        simlm search --index idx/minilm --queries $D/queries.jsonl --qrels $D/qrels/test.tsv --output runs/minilm.trec
        simlm search --index idx/minilm --queries $D/queries.jsonl --qrels $D/qrels/train.tsv --k 200 --output runs/minilm.train.trec
        """,
        work,
        unset=SUITE_DEFAULTS,
    )
    return work


def test_bm25_reproduces_anserini(bm25: Path) -> None:
    out = shell(
        "simlm evaluate --qrels $D/qrels/test.tsv --run runs/bm25.trec --metric ndcg@10 --metric mrr@10 --metric recall@100 --json",
        bm25,
    )
    scores = json.loads(out)  # one JSON object, keyed by the metric names as given
    print("BM25", scores)
    assert list(scores) == ["ndcg@10", "mrr@10", "recall@100"]
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert abs(scores["ndcg@10"] - ANSERINI_NDCG10) <= 0.005
    assert abs(scores["recall@100"] - ANSERINI_R100) <= 0.01


def test_fusing_bm25_and_minilm_tuned_on_train(bm25: Path, minilm: Path, tmp_path: Path) -> None:
    """Min-max interpolation, weights tuned on the train queries only: above both inputs and >= 0.73 (measured
    here 0.7348; RRF k=60 0.7179). The test qrels are never given to `simlm fuse`."""
    runs = {"bm25": bm25 / "runs", "minilm": minilm / "runs"}
    simlm("fuse", str(runs["bm25"] / "bm25.trec"), str(runs["minilm"] / "minilm.trec"), "--method", "interpolate",
          "--tune-on", str(DATA / "qrels" / "train.tsv"), "--tune-run", str(runs["bm25"] / "bm25.train.trec"),
          "--tune-run", str(runs["minilm"] / "minilm.train.trec"), "-o", "fused.trec", cwd=tmp_path)  # fmt: skip
    simlm("fuse", str(runs["bm25"] / "bm25.trec"), str(runs["minilm"] / "minilm.trec"), "--method", "rrf",
          "-o", "rrf.trec", cwd=tmp_path)  # fmt: skip
    fused, rrf = evaluate(tmp_path / "fused.trec", tmp_path), evaluate(tmp_path / "rrf.trec", tmp_path)
    alone = [evaluate(runs[name] / f"{name}.trec", tmp_path)["ndcg@10"] for name in runs]
    print("fused", fused, "rrf", rrf, "alone", alone)
    assert fused["ndcg@10"] >= 0.73
    assert fused["ndcg@10"] > max(alone) and rrf["ndcg@10"] > max(alone)


def _sentence_transformers_run(path: Path) -> None:
    """The same model through sentence-transformers' own encode, exact cosine top-1000, as a TREC run."""
    from sentence_transformers import SentenceTransformer

    from simlm_cli.io.corpus import iter_corpus
    from simlm_cli.io.qrels import read_qrels
    from simlm_cli.io.queries import read_queries
    from simlm_cli.models.settings import resolve_model_path

    model = SentenceTransformer(resolve_model_path(None), device="cpu")
    passages = list(iter_corpus(CORPUS))
    judged = read_qrels(QRELS).judgments
    queries = {q: t for q, t in read_queries(QUERIES).items() if q in judged}
    docs = model.encode([f"{p.title} {p.text}".strip() for p in passages], batch_size=32, normalize_embeddings=True)
    qvecs = model.encode(list(queries.values()), batch_size=32, normalize_embeddings=True)
    scores = qvecs @ docs.T
    with open(path, "w") as handle:
        for qid, row in zip(queries, scores):
            top = np.argsort(-row)[:1000]
            for rank, i in enumerate(top, 1):
                handle.write(f"{qid} Q0 {passages[i].id} {rank} {row[i]:.6f} st\n")


def test_minilm_matches_sentence_transformers(minilm: Path, tmp_path: Path) -> None:
    ours = evaluate(minilm / "runs" / "minilm.trec", tmp_path)
    _sentence_transformers_run(tmp_path / "st.trec")
    theirs = evaluate(tmp_path / "st.trec", tmp_path)
    print("simlm", ours, "sentence-transformers", theirs)
    assert abs(ours["ndcg@10"] - theirs["ndcg@10"]) <= 0.003
    assert ours["ndcg@10"] > 0.6  # MTEB reports 0.6451 for this model on SciFact


MINILM_ZERO_SHOT_NDCG10 = 0.6451  # sentence-transformers' own encode of the embedded MiniLM (= MTEB's 64.51)


def test_the_default_keeps_pytorch_fp32s_zero_shot_quality(minilm: Path, tmp_path: Path, monkeypatch) -> None:
    """simlm's default (`encode | index | search` with no flag: OpenVINO on the CPU) within 0.002 nDCG@10 of
    PyTorch fp32's 0.6451. It reuses the session's `minilm` fixture (one full-corpus encode shared with the fusion,
    sentence-transformers and int8 tests), so it costs an evaluation only."""
    from simlm_cli.device import resolve_runtime

    for name in SUITE_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    default = resolve_runtime("auto", "auto")
    meta = json.loads((minilm / "idx" / "minilm" / "meta.json").read_text())
    assert (meta["precision"], meta["backend"]) == (default.precision.value, default.backend.value)
    scores = evaluate(minilm / "runs" / "minilm.trec", tmp_path)
    print(f"default ({default.describe()})", scores)
    assert abs(scores["ndcg@10"] - MINILM_ZERO_SHOT_NDCG10) <= 0.002


def test_int8_minilm_keeps_fp32s_quality(minilm: Path, tmp_path: Path, int8_cache: Path) -> None:
    """`--precision int8` end to end (passages and queries): nDCG@10 within 0.005 of PyTorch fp32's and vectors at
    mean cosine >= 0.99 to the session's default index's (the `minilm` fixture; cosine >= 0.9999 to fp32's).
    One int8 encode of the corpus (75 s on 2 cores; the conversion to int8 adds ~20 s)."""
    import faiss

    from simlm_cli.io.embeddings import EmbeddingReader

    shell(
        """
        simlm encode --precision int8 --corpus $D/corpus.jsonl --output int8.emb
        simlm index int8.emb --output idx/int8
        simlm search --index idx/int8 --queries $D/queries.jsonl --qrels $D/qrels/test.tsv --precision int8 --output runs/int8.trec
        """,
        tmp_path,
        env={"SIMLM_CACHE_DIR": str(int8_cache)},
    )  # fmt: skip
    int8 = evaluate(tmp_path / "runs" / "int8.trec", tmp_path)
    print("int8", int8)
    # int8 must not lose more than 0.005; measured it came out 0.0052 *above* fp32 (0.6503 vs 0.6451 on an EPYC
    # Zen 4, OpenVINO + NNCF): quantisation noise either way, so a gain is bounded more loosely than a loss.
    assert MINILM_ZERO_SHOT_NDCG10 - 0.005 <= int8["ndcg@10"] <= MINILM_ZERO_SHOT_NDCG10 + 0.01
    assert json.loads((tmp_path / "idx" / "int8" / "meta.json").read_text())["precision"] == "int8"

    index = faiss.read_index(str(minilm / "idx" / "minilm" / "index.faiss"))  # flat: holds the vectors exactly
    docids = (minilm / "idx" / "minilm" / "docids.txt").read_text().split()
    reference = dict(zip(docids, index.reconstruct_n(0, index.ntotal)))
    with open(tmp_path / "int8.emb", "rb") as handle:
        blocks = list(EmbeddingReader(handle, "int8.emb"))
    ids = [docid for block_ids, _ in blocks for docid in block_ids]
    vectors = np.concatenate([block for _, block in blocks])
    default_vectors = np.stack([reference[docid] for docid in ids])
    cosine = np.sum(vectors * default_vectors, axis=1)  # both L2-normalised
    print(f"int8 vs the default cosine: mean {cosine.mean():.4f} min {cosine.min():.4f}")
    assert len(ids) == index.ntotal and cosine.mean() >= 0.99


def test_retriever1_from_minilm_beats_zero_shot(bm25: Path, tmp_path: Path) -> None:
    """One epoch of Retriever1 (BM25 hard negatives, Eq. 3 loss; 51 steps of 16 queries x 4 passages, ~6 min on
    2 cores, at the recipes' lr 5e-5) must beat the zero-shot model (0.6272 zero-shot at the same 144 tokens)."""
    train_qrels = str(DATA / "qrels" / "train.tsv")
    simlm("mine", "--run", str(bm25 / "runs" / "bm25.train.trec"), "--queries", str(QUERIES), "--qrels", train_qrels,
          "--output", "train/bm25.jsonl", cwd=tmp_path)  # fmt: skip
    simlm("train", "--train-file", "train/bm25.jsonl", "--corpus", str(CORPUS), "--output", "models/r1",
          "--pooling", "model", "--negatives", "3", "--batch-size", "16", "--epochs", "1", "--lr", "5e-5",
          "--temperature", "0.05", "--query-max-length", "32", "--passage-max-length", "144",
          cwd=tmp_path)  # fmt: skip
    shell("simlm encode --model models/r1 --corpus $D/corpus.jsonl | simlm index --output idx/r1", tmp_path)
    simlm("search", "--index", "idx/r1", "--queries", str(QUERIES), "--qrels", str(QRELS),
          "--output", "runs/r1.trec", cwd=tmp_path)  # fmt: skip
    scores = evaluate(tmp_path / "runs/r1.trec", tmp_path)
    print("Retriever1 (1 epoch)", scores)
    assert scores["ndcg@10"] > MINILM_ZERO_SHOT_NDCG10
