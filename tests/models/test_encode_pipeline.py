"""The encode pipeline: length-sorted batches by count or by token budget, chunks tokenized on a background thread
ahead of the model, and the same vectors in the same order whichever of these is used; errors in the background
surface as themselves and an early stop leaves no thread behind."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from simlm_cli.device import CUDA_BATCH_TOKENS, Precision, resolve_runtime
from simlm_cli.errors import InputError
from simlm_cli.io.corpus import Passage
from simlm_cli.io.embeddings import EmbeddingReader
from simlm_cli.models.batching import default_batching, length_sorted_batches, prefetched
from simlm_cli.models.biencoder import BiEncoder
from simlm_cli.models.settings import resolve_settings
from tests.conftest import PASSAGES, run_cli

CPU = resolve_runtime("cpu", Precision.fp32)


def _passages(repeat: int = 3) -> list[Passage]:
    """The tiny corpus three times over (36 passages of varied length), ids made unique."""
    return [Passage(f"{i}-{r}", t, x * (1 + r), 0) for r in range(repeat) for i, t, x in PASSAGES]


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _no_prefetch_threads() -> bool:
    return not any(t.name.startswith("simlm-prefetch") for t in threading.enumerate())


@pytest.fixture(scope="module")
def encoder(tiny_bert_dir: Path) -> BiEncoder:
    return BiEncoder.load(resolve_settings(str(tiny_bert_dir)), CPU)


# -- batches ---------------------------------------------------------------------------------------------------
def test_batches_by_count_keep_the_length_order_and_input_order_at_ties() -> None:
    batches = length_sorted_batches(np.array([3, 9, 3, 5, 9]), batch_size=2)
    assert [b.tolist() for b in batches] == [[1, 4], [3, 0], [2]]
    assert [b.tolist() for b in length_sorted_batches(np.array([2, 4]), None)] == [[1, 0]]  # no bound: one batch
    assert length_sorted_batches(np.array([], dtype=np.int64), 16) == []


def test_batches_by_token_budget() -> None:
    lengths = np.array([10, 40, 10, 20, 10, 10, 100])
    batches = [b.tolist() for b in length_sorted_batches(lengths, None, max_tokens=40)]
    # 100 > 40: alone (a batch holds at least one row); 40 alone; then 20 x 2; then 10 x 4 (padded to 10 each)
    assert batches == [[6], [1], [3, 0], [2, 4, 5]]
    assert sum(len(b) * lengths[b[0]] <= 40 for b in batches[1:]) == 3
    capped = [b.tolist() for b in length_sorted_batches(lengths, 2, max_tokens=40)]
    assert capped == [[6], [1], [3, 0], [2, 4], [5]]  # --batch-size caps the rows as well


def test_defaults_keep_cpu_batches_and_use_a_token_budget_on_cuda(encoder: BiEncoder) -> None:
    assert (encoder.batch_size, encoder.max_batch_tokens) == (16, None)  # the CPU default as it was
    assert default_batching("cuda", None, None) == (None, CUDA_BATCH_TOKENS)
    assert default_batching("cuda", 256, None) == (256, None)  # an explicit --batch-size means what it says
    assert default_batching("cpu", None, 4096) == (None, 4096)


# -- the same vectors, the same order ----------------------------------------------------------------------------
def test_vectors_and_order_do_not_depend_on_prefetch_or_batching(tiny_bert_dir: Path, encoder: BiEncoder) -> None:
    passages = _passages()
    reference = encoder.encode_passages(passages)
    for prefetch in (0, 1, 3):
        out = list(encoder.encode_stream(_chunks(passages, 7), prefetch=prefetch))
        assert [p.id for chunk, _ in out for p in chunk] == [p.id for p in passages]
        streamed = np.concatenate([v for _, v in out])
        # the same batches (chunks of 7 are batched alike whatever thread tokenizes them): bit for bit
        assert np.array_equal(streamed, np.concatenate([encoder.encode_passages(c) for c in _chunks(passages, 7)]))
        np.testing.assert_allclose(streamed, reference, atol=1e-6)
    settings = resolve_settings(str(tiny_bert_dir))
    for batch_size, max_tokens in ((None, 20), (None, 64), (3, 64), (1, None)):
        other = BiEncoder.load(settings, CPU, batch_size=batch_size, max_batch_tokens=max_tokens)
        assert (other.batch_size, other.max_batch_tokens) == (batch_size, max_tokens)
        vectors = np.concatenate([v for _, v in other.encode_stream(_chunks(passages, 10))])
        np.testing.assert_allclose(vectors, reference, atol=1e-6)  # other batches: fp32 rounding only


def test_the_cli_writes_the_same_vectors_with_a_token_budget(tiny_bert_dir: Path, tiny_data, tmp_path: Path) -> None:
    streams = {}
    for name, extra in (("count", []), ("tokens", ["--max-batch-tokens", "24", "--chunk-size", "5"])):
        out = tmp_path / f"{name}.emb"
        done = run_cli(["encode", "-c", tiny_data.corpus, "--model", tiny_bert_dir, "-o", out, *extra])
        assert done.returncode == 0, done.stderr
        with open(out, "rb") as handle:
            blocks = list(EmbeddingReader(handle, out.name))
        streams[name] = ([i for ids, _ in blocks for i in ids], np.concatenate([v for _, v in blocks]))
    assert streams["count"][0] == streams["tokens"][0] == [p[0] for p in PASSAGES]
    np.testing.assert_allclose(streams["count"][1], streams["tokens"][1], atol=1e-6)


# -- errors and early stops --------------------------------------------------------------------------------------
def _within(seconds: float, fn) -> object:
    """fn() on a helper thread: a hang fails the test instead of stalling the suite."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result(timeout=seconds)


def test_an_error_in_the_background_is_raised_to_the_consumer(encoder: BiEncoder, monkeypatch) -> None:
    calls = []

    def tokenize(chunk):
        calls.append(len(chunk))
        if len(calls) == 2:
            raise InputError("corpus.jsonl", "bad passage", line=9)
        return original(chunk)

    original = encoder.tokenize_passages
    monkeypatch.setattr(encoder, "tokenize_passages", tokenize)

    def consume() -> list:
        return [v for _, v in encoder.encode_stream(_chunks(_passages(), 5), prefetch=1)]

    with pytest.raises(InputError, match=r"corpus.jsonl:9: bad passage"):
        _within(60, consume)
    assert _no_prefetch_threads()


def test_a_consumer_that_stops_early_leaves_no_work_running() -> None:
    started = []

    def work(item: int) -> int:
        started.append(item)
        time.sleep(0.01)
        return item * 2

    def stop_after_two() -> list:
        seen = []
        for item, doubled in prefetched(range(1000), work, depth=2):
            seen.append(doubled)
            if item == 1:
                raise RuntimeError("the writer failed")
        return seen

    with pytest.raises(RuntimeError, match="the writer failed"):
        _within(30, stop_after_two)
    assert len(started) <= 5  # items 0-1 consumed, at most depth ahead (+ one being submitted): never the rest
    assert _no_prefetch_threads()
    stream = prefetched(range(1000), work, depth=2)
    assert next(stream) == (0, 0)
    stream.close()  # a consumer that simply stops
    assert _no_prefetch_threads()


def test_prefetch_holds_at_most_depth_items_ahead() -> None:
    consumed, ahead = [], []

    def work(item: int) -> int:
        ahead.append(item - len(consumed))
        return item

    for item, _ in prefetched(range(20), work, depth=3):
        consumed.append(item)
    assert consumed == list(range(20)) and max(ahead) <= 3
    assert [x for x, _ in prefetched(iter([]), work, depth=1)] == []


def test_errors_reading_the_items_are_raised_on_the_callers_thread() -> None:
    def items():
        yield 1
        raise InputError("corpus.jsonl", "expected a JSON object", line=2)

    with pytest.raises(InputError, match="corpus.jsonl:2"):
        _within(30, lambda: list(prefetched(items(), lambda x: x, depth=1)))
    assert _no_prefetch_threads()
