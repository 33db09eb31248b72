"""simlm's dense index layer without the CLI: parts merged exactly, and IVF-PQ built without polysemous training."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

from simlm_cli.errors import InputError
from simlm_cli.index.dense import (
    BuildOptions,
    DenseIndex,
    IndexType,
    MergedDenseIndex,
    build_dense_index,
    faiss_module,
)
from simlm_cli.io.embeddings import EmbeddingReader, EmbeddingWriter, StreamHeader

DIM = 32
ENCODER = {"model": "m", "pooling": "cls", "normalize": True}


def clustered(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((16, DIM))
    vectors = centres[rng.integers(0, 16, count)] + 0.4 * rng.standard_normal((count, DIM))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def stream(ids: list[str], vectors: np.ndarray) -> EmbeddingReader:
    buffer = io.BytesIO()
    writer = EmbeddingWriter(buffer, StreamHeader(dim=DIM, dtype="float32", encoder=ENCODER))
    writer.write(ids, vectors)
    writer.close()
    buffer.seek(0)
    return EmbeddingReader(buffer, f"{ids[0]}.emb")


def build(tmp_path, name: str, ids: list[str], vectors: np.ndarray, kind: IndexType = IndexType.flat) -> DenseIndex:
    build_dense_index([stream(ids, vectors)], tmp_path / name, BuildOptions(index_type=kind))
    return DenseIndex(tmp_path / name)


def test_merged_parts_equal_one_flat_index(tmp_path) -> None:
    vectors, queries = clustered(900), clustered(40, seed=1)
    ids = [f"d{i}" for i in range(900)]
    whole = build(tmp_path, "whole", ids, vectors)
    cuts = [0, 100, 450, 900]  # unequal parts, one smaller than k
    parts = [build(tmp_path, f"p{a}", ids[a:b], vectors[a:b]) for a, b in zip(cuts, cuts[1:])]
    merged = MergedDenseIndex(parts)
    assert merged.docids.tolist() == ids and merged.meta["count"] == 900
    for k in (10, 200, 5000):  # 5000 > every document: all 900, ranked
        scores, rows = merged.search(queries, k)
        expected_scores, expected_rows = whole.search(queries, k)
        np.testing.assert_array_equal(rows, expected_rows)
        # BLAS blocks a 900-row matrix differently from a 100-row one: the last bit of a score may differ.
        np.testing.assert_allclose(scores, expected_scores, atol=1e-6)
    assert list(merged.rankings(["q"], scores[:1], rows[:1])) == list(whole.rankings(["q"], scores[:1], rows[:1]))


def test_merged_parts_must_be_disjoint_and_alike(tmp_path) -> None:
    vectors = clustered(20)
    a = build(tmp_path, "a", [f"d{i}" for i in range(10)], vectors[:10])
    b = build(tmp_path, "b", [f"d{i}" for i in range(9, 19)], vectors[9:19])
    with pytest.raises(InputError, match="'d9' is also in"):
        MergedDenseIndex([a, b])


def test_ivfpq_is_built_without_polysemous_training_and_recalls_sanely(tmp_path) -> None:
    faiss = faiss_module()
    vectors, queries = clustered(4000), clustered(50, seed=1)
    ours = build(tmp_path, "ivfpq", [f"d{i}" for i in range(4000)], vectors, IndexType.ivfpq)
    assert ours.meta["search_params"]["nlist"] == min(int(4 * math.sqrt(4000)), 4000 // 39)
    assert faiss.downcast_index(faiss.extract_index_ivf(ours.index)).do_polysemous_training is False
    _, rows = ours.search(queries, 100)
    _, exact = build(tmp_path, "flat", [f"d{i}" for i in range(4000)], vectors).search(queries, 100)
    recall = np.mean([len(set(r) & set(e)) / 100 for r, e in zip(rows, exact)])
    assert recall > 0.5  # PQ codes of 32-d vectors in 8 bytes: approximate, but far above chance (0.025)


@pytest.mark.slow  # faiss's polysemous training alone takes ~45 s on 2 shared cores
def test_ivfpq_without_polysemous_training_finds_what_the_default_factory_finds(tmp_path) -> None:
    """simlm builds `IVF..,PQ..np`; faiss's default `PQ..` adds polysemous training, which only reorders the
    codebook centroids: the search results must not change."""
    faiss = faiss_module()
    vectors, queries = clustered(4000), clustered(50, seed=1)
    ours = build(tmp_path, "ivfpq", [f"d{i}" for i in range(4000)], vectors, IndexType.ivfpq)
    params = ours.meta["search_params"]
    default = faiss.index_factory(DIM, f"IVF{params['nlist']},PQ{params['pq_m']}", faiss.METRIC_INNER_PRODUCT)
    default.train(vectors)  # simlm trains on all of them too (fewer than 64 points per centroid)
    default.add(vectors)
    faiss.extract_index_ivf(default).nprobe = params["nprobe"]
    scores, rows = ours.search(queries, 100)
    default_scores, default_rows = default.search(queries, 100)
    np.testing.assert_array_equal(rows, default_rows)
    np.testing.assert_allclose(scores, default_scores, rtol=1e-6)


@pytest.mark.parametrize("part_of", ["x", [{"corpus": 1}], [{"corpus": "c.jsonl", "num_shards": 2, "shard_ids": [5]}]])
def test_a_broken_part_of_in_meta_json_is_one_error(tmp_path, part_of) -> None:
    from simlm_cli.pipeline.indexes import check_complete

    (tmp_path / "meta.json").write_text(json.dumps({"kind": "simlm-dense-index", "part_of": part_of}))
    with pytest.raises(InputError, match="meta.json: field 'part_of': expected a list"):
        check_complete([str(tmp_path)])


# -- issue 21, item 5: docids.txt that `search` would write into runs `evaluate` refuses ------------------------------
@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("d1\nmy doc\nd3\n", 2, "holds white space"),
        ("d1\nd2\u00a0x\n", 2, "holds white space"),
        ("d1\n\nd3\n", 2, "is empty"),
        ("\nd2\n", 1, "is empty"),
        ("d1\r\nd2\r\n", 1, "holds white space"),
    ],
    ids=["space", "nbsp", "empty-line", "empty-first-line", "crlf"],
)
def test_docids_with_white_space_or_empty_ids_are_refused_with_their_line(tmp_path, text, line, what) -> None:
    from simlm_cli.errors import InputError
    from simlm_cli.index.dense import read_docids

    path = tmp_path / "docids.txt"
    path.write_bytes(text.encode())
    with pytest.raises(InputError, match=rf"^{path}:{line}: corrupt: the document id {what}"):
        read_docids(path)


def test_docids_are_read_one_per_line(tmp_path) -> None:
    from simlm_cli.index.dense import read_docids

    (tmp_path / "docids.txt").write_text("d1\nd\u00e92\nd3\n")
    assert read_docids(tmp_path / "docids.txt").tolist() == ["d1", "d\u00e92", "d3"]
