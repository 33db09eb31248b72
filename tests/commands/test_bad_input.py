"""Bad input through the real CLI: a non-zero exit, one `simlm: error:` line that names the file and line, no
traceback, and no partial output (nor a temporary file) left behind.

All the commands are prepared and started together by the module fixture `results` (each CLI process spends
seconds importing torch); the tests look up their own case.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

GOOD = [{"_id": "d1", "title": "Protein folding", "text": "Proteins fold."}, {"_id": "d2", "text": "Genes."}]


def jsonl(records) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


@dataclass
class Case:
    """One bad input: how to build it (`setup(ctx, tmp) -> args, stdin`), where the command would have written,
    and what the one error line must contain (`{tmp}` stands for the case's directory)."""

    setup: Callable[[SimpleNamespace, Path], tuple[list, bytes | None]]
    output: str  # relative to the case directory
    expect: list[str]
    preamble: str | None = None  # a known extra stderr line before the error (progress/info), as a regex
    bug: str | None = None  # a simlm bug makes this case fail today (strict xfail)
    exit_zero: bool = False  # not an error: a warning, and the command succeeds


def corpus_file(name: str, content: bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / name
        path.write_bytes(content)
        return path

    return make


CORPORA = {
    "malformed-json": (corpus_file("corpus.jsonl", jsonl(GOOD) + b'{"_id": "d3", "text": \n'), ["corpus.jsonl:3: ", "malformed JSON"]),
    "missing-id": (corpus_file("corpus.jsonl", jsonl([GOOD[0], {"title": "t", "text": "x"}])), ["corpus.jsonl:2: field '_id': missing"]),
    "duplicate-id": (corpus_file("corpus.jsonl", jsonl([*GOOD, {"_id": "d1", "text": "again"}])), ["corpus.jsonl:3: duplicate id 'd1'"]),
    "empty-corpus": (corpus_file("corpus.jsonl", b""), ["corpus.jsonl: empty corpus"]),
    "invalid-utf8": (corpus_file("corpus.jsonl", jsonl(GOOD[:1]) + b'{"_id": "d2", "text": "caf\xe9"}\n'), ["corpus.jsonl:2: invalid UTF-8"]),
}  # fmt: skip

ENCODE_PREAMBLE = r"^(simlm: encoding .*|encode\s.*)$"  # the settings line and the progress bar's last state
INDEX_PREAMBLE = r"^index\s.*$"  # the progress bar's last state


def located(expect: list[str]) -> list[str]:
    """'corpus.jsonl:3: ...' fragments name the file by its full path, which lies in the case directory."""
    return [f"{{tmp}}/{e}" if re.match(r"^[\w.]+(:\d+)?: ", e) else e for e in expect]


def encode_case(make: Callable[[Path], Path], expect: list[str], bug: str | None = None) -> Case:
    def setup(ctx, tmp):
        args = [
            "encode",
            "--model",
            ctx.model,
            "--corpus",
            make(tmp),
            "--device",
            "cpu",
            "--output",
            tmp / "out" / "x.emb",
        ]
        return args, None

    return Case(setup, "out/x.emb", located(expect), ENCODE_PREAMBLE, bug)


def bm25_case(make: Callable[[Path], Path], expect: list[str]) -> Case:
    def setup(ctx, tmp):
        return ["index", "--bm25", "--corpus", make(tmp), "--output", tmp / "out" / "idx"], None

    return Case(setup, "out/idx", located(expect))


def stream_case(cut: Callable[[bytes], bytes], expect: list[str], preamble: str | None = None) -> Case:
    def setup(ctx, tmp):
        return ["index", "--output", tmp / "out" / "idx"], cut(ctx.stream.read_bytes())

    return Case(setup, "out/idx", expect, preamble)


def qrels_case(lines: str, expect: list[str], exit_zero: bool = False) -> Case:
    def setup(ctx, tmp):
        qrels = tmp / "qrels.tsv"
        qrels.write_text("query-id\tcorpus-id\tscore\n" + lines)
        args = ["search", "--index", ctx.index, "--queries", ctx.data.queries, "--qrels", qrels]
        return [*args, "--output", tmp / "out" / "run.trec"], None

    return Case(setup, "out/run.trec", expect, exit_zero=exit_zero)


def broken_index_case(damage: Callable[[Path], None], expect: list[str]) -> Case:
    def setup(ctx, tmp):
        index = tmp / "idx"
        shutil.copytree(ctx.index, index)
        damage(index)
        args = ["search", "--index", index, "--queries", ctx.data.queries, "--qrels", ctx.data.qrels]
        return [*args, "--output", tmp / "out" / "run.trec"], None

    return Case(setup, "out/run.trec", expect)


def _edit_meta(index: Path, **changes) -> None:
    meta = json.loads((index / "meta.json").read_text())
    (index / "meta.json").write_text(json.dumps(meta | changes))


def _drop_meta(index: Path, key: str) -> None:
    meta = json.loads((index / "meta.json").read_text())
    meta.pop(key)
    (index / "meta.json").write_text(json.dumps(meta))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def evaluate_case(run_lines: str, extra: list[str], expect: list[str], exit_zero: bool = False) -> Case:
    def setup(ctx, tmp):
        run = tmp / "run.trec"
        run.write_text(run_lines)
        args = ["evaluate", "--qrels", ctx.data.qrels, "--run", run, "--json", *extra]
        return [*args, "--per-query", tmp / "out" / "per-query.tsv"], None

    return Case(setup, "out/per-query.tsv", expect, exit_zero=exit_zero)


def _corrupt_gzip(tmp: Path) -> Path:
    data = bytearray(gzip.compress(jsonl({"_id": f"d{i}", "text": f"passage {i}"} for i in range(2000))))
    for j in range(40, 60):
        data[j] ^= 0xFF
    path = tmp / "corpus.jsonl.gz"
    path.write_bytes(bytes(data))
    return path


def _truncated_gzip(tmp: Path) -> Path:
    data = gzip.compress(jsonl({"_id": f"d{i}", "text": f"passage {i}"} for i in range(2000)))
    path = tmp / "corpus.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    return path


JUDGED_RUN = "q1 Q0 d1 1 0.9 t\nq2 Q0 d4 1 0.8 t\n"
CASES: dict[str, Case] = {
    **{f"encode-{name}": encode_case(make, expect) for name, (make, expect) in CORPORA.items()},
    **{f"bm25-{name}": bm25_case(make, expect) for name, (make, expect) in CORPORA.items()},
    "encode-corrupt-gzip": encode_case(
        _corrupt_gzip, ["corpus.jsonl.gz"]
    ),
    "encode-truncated-gzip": encode_case(
        _truncated_gzip,
        ["corpus.jsonl.gz"],
    ),
    "search-qrels-query-not-in-queries": qrels_case(
        "q1\td1\t1\nq9\td2\t1\n", ["{tmp}/qrels.tsv:3: query 'q9' is judged but not in", "queries.jsonl"]
    ),
    "search-no-judged-document-in-index": qrels_case(
        "q1\tx1\t1\nq2\tx2\t1\n", ["{tmp}/qrels.tsv: no judged document is in the index"]
    ),
    "search-some-judged-documents-missing": qrels_case(
        "q1\td1\t1\nq1\tx1\t1\nq2\td4\t1\n",
        ["simlm: warning: 1 of 3 judged documents are not in the index (first: 'x1', {tmp}/qrels.tsv:"],
        exit_zero=True,
    ),
    "search-index-without-docids": broken_index_case(
        lambda index: (index / "docids.txt").unlink(), ["{tmp}/idx/docids.txt: missing"]
    ),
    "search-index-truncated-faiss": broken_index_case(
        lambda index: _truncate(index / "index.faiss"), ["{tmp}/idx/index.faiss: corrupt or unreadable faiss index"]
    ),
    "search-index-wrong-count": broken_index_case(
        lambda index: _edit_meta(index, count=13), ["{tmp}/idx: corrupt index: meta.json says 13 vectors"]
    ),
    "search-index-garbage-meta": broken_index_case(
        lambda index: (index / "meta.json").write_text("{garbage"), ["{tmp}/idx/meta.json: corrupt index metadata"]
    ),
    "search-index-wrong-kind": broken_index_case(
        lambda index: _edit_meta(index, kind="something"), ["{tmp}/idx/meta.json: field 'kind' must be"]
    ),
    # Issue 10, item 8: these were tracebacks.
    "search-index-encoder-null": broken_index_case(
        lambda index: _edit_meta(index, encoder=None), ["{tmp}/idx/meta.json: field 'encoder'"]
    ),
    "search-index-encoder-a-string": broken_index_case(
        lambda index: _edit_meta(index, encoder="bert"), ["{tmp}/idx/meta.json: field 'encoder'"]
    ),
    "search-index-encoder-missing": broken_index_case(
        lambda index: _drop_meta(index, "encoder"), ["{tmp}/idx/meta.json: field 'encoder'"]
    ),
    "search-index-encoder-pooling-a-number": broken_index_case(
        lambda index: _edit_meta(index, encoder={"model": "m", "pooling": 5}), ["field 'pooling': expected str"]
    ),
    "search-index-search-params-a-list": broken_index_case(
        lambda index: _edit_meta(index, search_params=[1]), ["{tmp}/idx/meta.json: field 'search_params'"]
    ),
    "search-index-nprobe-on-flat": broken_index_case(
        lambda index: _edit_meta(index, search_params={"nprobe": 4}), ["field 'search_params': --nprobe applies"]
    ),
    "search-index-docids-invalid-utf8": broken_index_case(
        lambda index: (index / "docids.txt").write_bytes(b"d\xff1\n" * 12), ["{tmp}/idx/docids.txt: corrupt"]
    ),
    "evaluate-unjudged-query": evaluate_case(
        JUDGED_RUN + "q9 Q0 d1 1 0.9 t\n", [], ["{tmp}/run.trec:3: query 'q9' is not judged", "--ignore-unjudged"]
    ),
    "evaluate-ignore-unjudged": evaluate_case(JUDGED_RUN + "q9 Q0 d1 1 0.9 t\n", ["--ignore-unjudged"], [], True),
    "evaluate-unknown-metric": evaluate_case(JUDGED_RUN, ["-M", "ndcg@10", "-M", "bleu"], ["--metric 'bleu': unknown metric"]),
    "evaluate-duplicate-document": evaluate_case(
        JUDGED_RUN + "q1 Q0 d1 2 0.1 t\n", [], ["{tmp}/run.trec:3: document 'd1' appears twice for query 'q1'"]
    ),
    "index-stream-without-end-marker": stream_case(lambda b: b[:-9], ["<stdin>: ", "truncated"], INDEX_PREAMBLE),
    "index-stream-cut-in-end-marker": stream_case(lambda b: b[:-3], ["<stdin>: ", "truncated"], INDEX_PREAMBLE),
    "index-stream-cut-mid-block": stream_case(lambda b: b[: len(b) // 2], ["<stdin>: ", "truncated"], INDEX_PREAMBLE),
    "index-stream-cut-in-header": stream_case(lambda b: b[:20], ["<stdin>: ", "truncated"]),
    "index-not-a-stream": stream_case(lambda b: b"query-id\tcorpus-id\tscore\n" * 10, ["<stdin>: not a simlm embedding stream"]),
    "index-empty-stdin": stream_case(lambda b: b"", ["<stdin>: ", "truncated"]),
}  # fmt: skip


def _two_streams(second: Callable[[SimpleNamespace, Path], Path]) -> Callable:
    def setup(ctx, tmp):
        return ["index", ctx.stream, second(ctx, tmp), "--output", tmp / "out" / "idx"], None

    return setup


def _copy_stream(ctx, tmp) -> Path:
    shutil.copy(ctx.stream, tmp / "again.emb")
    return tmp / "again.emb"


CASES.update(
    {
        "index-duplicate-ids-across-streams": Case(
            _two_streams(_copy_stream), "out/idx", ["{tmp}/again.emb: duplicate document id 'd1'"], INDEX_PREAMBLE
        ),
        "index-streams-of-different-encoders": Case(
            _two_streams(lambda ctx, tmp: ctx.st_stream),
            "out/idx",
            ["st.emb: made by a different encoder"],
            INDEX_PREAMBLE,
        ),
        "index-ivfpq-on-too-few-vectors": Case(
            lambda ctx, tmp: (["index", ctx.stream, "--type", "ivfpq", "--output", tmp / "out" / "idx"], None),
            "out/idx",
            ["--type ivfpq needs at least 256 vectors"],
            INDEX_PREAMBLE,
        ),
        "index-missing-stream-file": Case(
            lambda ctx, tmp: (["index", tmp / "absent.emb", "--output", tmp / "out" / "idx"], None),
            "out/idx",
            ["{tmp}/absent.emb: no such embedding file"],
        ),
    }
)


def _their_directory(ctx, tmp) -> tuple[list, None]:
    """--output names a directory the user keeps other things in: it must survive, untouched."""
    (tmp / "theirs").mkdir()
    (tmp / "theirs" / "notes.txt").write_text("keep me")
    return ["index", ctx.stream, "--output", tmp / "theirs"], None


def _output_under_a_file(ctx, tmp) -> tuple[list, None]:
    """An output path that cannot be created (a file where a directory should be): the system's error, one line."""
    (tmp / "file.txt").write_text("x")
    args = ["search", "--index", ctx.index, "--queries", ctx.data.queries, "--device", "cpu"]
    return [*args, "--output", tmp / "file.txt" / "run.trec"], None


def _one_shard_of_two(ctx, tmp) -> tuple[list, None]:
    (tmp / "shards").mkdir()
    shutil.copy(sorted(ctx.shards.iterdir())[1], tmp / "shards")
    return ["index", tmp / "shards", "--output", tmp / "out" / "idx"], None


def _their_meta_json(ctx, tmp) -> tuple[list, None]:
    """A directory holding another tool's meta.json is still not one simlm wrote (issue 10, item 1)."""
    (tmp / "x" / "data").mkdir(parents=True)
    (tmp / "x" / "meta.json").write_text('{"name": "mine"}')
    (tmp / "x" / "p.txt").write_text("precious")
    return ["index", ctx.stream, "--output", tmp / "x"], None


CASES.update(
    {
        "index-output-holds-another-tools-meta-json": Case(
            _their_meta_json, "x/index.faiss", ["{tmp}/x: exists and is not one simlm wrote"]
        ),
        "index-two-streams-joined-by-cat": stream_case(
            lambda b: b + b, ["<stdin>: bytes after the stream's end marker"], INDEX_PREAMBLE
        ),
        "index-output-is-someone-elses-directory": Case(
            _their_directory, "theirs/meta.json", ["{tmp}/theirs: exists and is not one simlm wrote"]
        ),
        "bm25-output-is-someone-elses-directory": Case(
            lambda ctx, tmp: (
                ["index", "--bm25", "--corpus", ctx.data.corpus, "--output", _their_directory(ctx, tmp)[0][-1]],
                None,
            ),
            "theirs/meta.json",
            ["{tmp}/theirs: exists and is not one simlm wrote"],
        ),
        "index-missing-shard": Case(
            _one_shard_of_two, "out/idx", ["shard-00001-of-00002.emb: holds shard 1 of 2", "shard(s) 0 are missing"]
        ),
        "encode-num-shards-without-shard-id": Case(
            lambda ctx, tmp: (
                [
                    "encode",
                    "--model",
                    ctx.model,
                    "--corpus",
                    ctx.data.corpus,
                    "--num-shards",
                    "2",
                    "--output",
                    tmp / "out" / "x.emb",
                ],
                None,
            ),  # fmt: skip
            "out/x.emb",
            ["--num-shards 2 needs --shard-id"],
        ),
        "index-gpu-without-a-gpu": Case(
            lambda ctx, tmp: (["index", ctx.stream, "--gpu", "--output", tmp / "out" / "idx"], None),
            "out/idx",
            ["--gpu: "],
        ),
        "search-gpu-without-a-gpu": Case(
            lambda ctx, tmp: (
                [
                    "search",
                    "--index",
                    ctx.index,
                    "--queries",
                    ctx.data.queries,
                    "--gpu",
                    "--device",
                    "cpu",
                    "--output",
                    tmp / "out" / "run.trec",
                ],
                None,
            ),  # fmt: skip
            "out/run.trec",
            ["--gpu: "],
        ),
        "search-output-under-a-file": Case(_output_under_a_file, "run.trec", ["{tmp}/file.txt"]),
        "search-nprobe-on-a-flat-index": Case(
            lambda ctx, tmp: (
                [
                    "search",
                    "--index",
                    ctx.index,
                    "--queries",
                    ctx.data.queries,
                    "--nprobe",
                    "4",
                    "--output",
                    tmp / "out" / "run.trec",
                ],
                None,
            ),
            "out/run.trec",
            ["--nprobe applies to ivfpq indexes"],
        ),  # fmt: skip
    }
)


# -- issue 21, items 4-5: tracebacks and unclear errors that became one line; runs that stay parseable --------------
DEEP_JSON = "[" * 10_000 + "]" * 10_000


def _with_header(stream: bytes, **changes) -> bytes:
    """`stream` with its JSON header changed (the magic, a uint32 length, the header, then the blocks)."""
    start = len(b"SIMLM-EMB\x01\n")
    length = int.from_bytes(stream[start : start + 4], "little")
    header = json.loads(stream[start + 4 : start + 4 + length]) | changes
    payload = json.dumps(header).encode()
    return stream[:start] + len(payload).to_bytes(4, "little") + payload + stream[start + 4 + length :]


def queries_case(lines: str, expect: list[str]) -> Case:
    def setup(ctx, tmp):
        (tmp / "queries.jsonl").write_text('{"_id": "q1", "text": "proteins"}\n' + lines)
        args = ["search", "--index", ctx.index, "--queries", tmp / "queries.jsonl", "--device", "cpu"]
        return [*args, "--output", tmp / "out" / "run.trec"], None

    return Case(setup, "out/run.trec", expect)


def _index_of_16_d_vectors(ctx, tmp) -> tuple[list, None]:
    """An index made by the tiny model's settings but of 16-d vectors: its queries (32-d) cannot be searched."""
    from simlm_cli.index.dense import build_dense_index
    from simlm_cli.io.embeddings import EmbeddingReader
    from simlm_cli.options.index import BuildOptions
    from tests.commands.conftest import _read_stream, write_random_stream

    write_random_stream(tmp / "16d.emb", _read_stream(ctx.stream)[0].encoder, count=20, dim=16)
    with open(tmp / "16d.emb", "rb") as handle:
        build_dense_index([EmbeddingReader(handle, "16d.emb")], tmp / "idx16", BuildOptions())
    args = ["search", "--index", tmp / "idx16", "--queries", ctx.data.queries, "--device", "cpu"]
    return [*args, "--output", tmp / "out" / "run.trec"], None


def _docid_with_a_space(index: Path) -> None:
    ids = (index / "docids.txt").read_text().splitlines()
    (index / "docids.txt").write_text("\n".join([ids[0], "my doc", *ids[2:]]) + "\n")


def _two_runs(tmp: Path) -> list[Path]:
    for name in ("a.trec", "b.trec"):
        (tmp / name).write_text(JUDGED_RUN)
    return [tmp / "a.trec", tmp / "b.trec"]


def _search_tagged(tag: str) -> Callable:
    def setup(ctx, tmp):
        args = ["search", "--index", ctx.index, "--queries", ctx.data.queries, "--tag", tag]
        return [*args, "--output", tmp / "out" / "run.trec"], None

    return setup


def _run_named_dash(ctx, tmp) -> tuple[list, bytes]:
    """A file named `-`, given as `./-`: the file, not stdin (which holds nothing here)."""
    (tmp / "-").write_text(JUDGED_RUN)
    return ["evaluate", "--qrels", ctx.data.qrels, "--run", "./-", "--json", "-M", "NDCG@10"], b""


CORPORA_21 = {
    "deeply-nested-json": (
        corpus_file("corpus.jsonl", jsonl(GOOD) + b'{"_id": "d3", "text": ' + DEEP_JSON.encode() + b"}\n"),
        ["corpus.jsonl:3: JSON nested deeper than 100 levels"],
    ),
}
CASES.update(
    {
        **{f"encode-{name}": encode_case(make, expect) for name, (make, expect) in CORPORA_21.items()},
        **{f"bm25-{name}": bm25_case(make, expect) for name, (make, expect) in CORPORA_21.items()},
        "index-stream-dim-past-the-maximum": stream_case(
            lambda b: _with_header(b, dim=10**12),
            ["<stdin>: corrupt stream header: dim 1000000000000 is over simlm's maximum of 65536"],
        ),
        "search-index-encoder-empty": broken_index_case(
            lambda index: _edit_meta(index, encoder={}), ["{tmp}/idx/meta.json: field 'encoder'", "'model': missing"]
        ),
        "search-index-meta-deeply-nested": broken_index_case(
            lambda index: (index / "meta.json").write_text(DEEP_JSON),
            ["{tmp}/idx/meta.json: JSON nested deeper than 100 levels"],
        ),
        "search-index-count-a-string": broken_index_case(
            lambda index: _edit_meta(index, count="13"),
            ["{tmp}/idx/meta.json: field 'count': expected a non-negative integer, got str '13'"],
        ),
        "search-index-dim-a-string": broken_index_case(
            lambda index: _edit_meta(index, dim="32"),
            ["{tmp}/idx/meta.json: field 'dim': expected a non-negative integer, got str '32'"],
        ),
        "search-index-docid-with-a-space": broken_index_case(
            _docid_with_a_space, ["{tmp}/idx/docids.txt:2: corrupt: the document id holds white space"]
        ),
        "search-queries-deeply-nested": queries_case(
            '{"_id": "q2", "text": ' + DEEP_JSON + "}\n", ["{tmp}/queries.jsonl:2: JSON nested deeper than 100"]
        ),
        "search-queries-empty-text": queries_case(
            '{"_id": "q2", "text": " "}\n', ["{tmp}/queries.jsonl:2: field 'text': empty query text"]
        ),
        "search-queries-text-a-number": queries_case(
            '{"_id": "q2", "text": 5}\n', ["{tmp}/queries.jsonl:2: field 'text': expected a string, got int"]
        ),
        "search-query-model-of-another-dim": Case(
            _index_of_16_d_vectors,
            "out/run.trec",
            ["the query model's vectors have 32 dimensions, the index {tmp}/idx16 holds 16-d vectors"],
        ),
        "search-tag-with-white-space": Case(
            _search_tagged("my run"), "out/run.trec", ["'--tag': run tag 'my run' is empty or holds white space"]
        ),
        "fuse-tag-with-white-space": Case(
            lambda ctx, tmp: (["fuse", *_two_runs(tmp), "--tag", "my run", "-o", tmp / "out" / "f.trec"], None),
            "out/f.trec",
            ["'--tag': run tag 'my run' is empty or holds white space"],
        ),
        "evaluate-relevance-level-0": evaluate_case(
            JUDGED_RUN, ["--relevance-level", "0"], ["'--relevance-level': Input should be greater than or equal to 1"]
        ),
        "evaluate-relevance-level-negative": evaluate_case(
            JUDGED_RUN, ["--relevance-level", "-3"], ["'--relevance-level': Input should be greater than or equal to 1"]
        ),
        "evaluate-run-named-dash": Case(_run_named_dash, "unused", [], exit_zero=True),
        "encode-output-dash-is-stdout": Case(
            lambda ctx, tmp: (
                ["encode", "--model", ctx.model, "--corpus", ctx.data.corpus, "--device", "cpu", "-o", "-"],
                None,
            ),
            "unused",
            [],
            exit_zero=True,
        ),
        "fuse-output-dash-is-stdout": Case(
            lambda ctx, tmp: (["fuse", *_two_runs(tmp), "-o", "-"], None), "unused", [], exit_zero=True
        ),
    }
)


@pytest.fixture(scope="module")
def results(tmp_path_factory, dense, tiny_bert_dir, cli_jobs) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    assert dense.done["encode-file"].returncode == 0 and dense.done["index-file"].returncode == 0
    ctx = SimpleNamespace(
        model=tiny_bert_dir,
        data=dense.data,
        stream=dense.work / "tiny.emb",
        st_stream=dense.work / "st.emb",
        index=dense.work / "idx-file",
        shards=dense.work / "shards",
    )
    started = {}
    for name, case in CASES.items():
        tmp = tmp_path_factory.mktemp(name)
        args, stdin = case.setup(ctx, tmp)
        started[name] = (tmp, cli_jobs.run(args, input=stdin, cwd=tmp))
    return {name: (tmp, future.result()) for name, (tmp, future) in started.items()}


def params(select: Callable[[Case], bool], xfail_when: Callable[[Case], str | None] = lambda case: case.bug):
    out = []
    for name, case in CASES.items():
        if not select(case):
            continue
        reason = xfail_when(case)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        out.append(pytest.param(name, id=name, marks=marks))
    return out


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


@pytest.mark.parametrize("name", params(lambda case: not case.exit_zero))
def test_error_is_reported_cleanly(results, name: str) -> None:
    case = CASES[name]
    tmp, done = results[name]
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = error_lines(done.stderr)
    errors = [line for line in lines if line.startswith("simlm: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], done.stderr
    for line in lines[:-1]:  # anything before the error is a known preamble, never a warning or a traceback
        assert case.preamble and re.match(case.preamble, line), done.stderr
    for fragment in case.expect:
        assert fragment.format(tmp=tmp) in errors[0], (fragment.format(tmp=tmp), errors[0])
    # No partial output, and no temporary file or directory beside where it would have gone.
    output = tmp / case.output
    assert not output.exists()
    if output.parent.exists():
        assert not [p.name for p in output.parent.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    "name",
    params(lambda case: not case.exit_zero),
)
def test_error_is_the_only_stderr_line(results, name: str) -> None:
    tmp, done = results[name]
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and lines[0].startswith("simlm: error: "), done.stderr


def test_someone_elses_directory_is_left_as_it_was(results) -> None:
    for name in ("index-output-is-someone-elses-directory", "bm25-output-is-someone-elses-directory"):
        tmp, done = results[name]
        assert done.returncode == 2
        assert sorted(p.name for p in (tmp / "theirs").iterdir()) == ["notes.txt"]
        assert (tmp / "theirs" / "notes.txt").read_text() == "keep me"


def test_a_directory_with_another_tools_meta_json_keeps_its_files(results) -> None:
    tmp, done = results["index-output-holds-another-tools-meta-json"]
    assert done.returncode == 2, done.stderr
    assert sorted(p.name for p in (tmp / "x").iterdir()) == ["data", "meta.json", "p.txt"]
    assert (tmp / "x" / "p.txt").read_text() == "precious"


def test_some_judged_documents_missing_is_a_warning(results) -> None:
    tmp, done = results["search-some-judged-documents-missing"]
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert CASES["search-some-judged-documents-missing"].expect[0].format(tmp=tmp) in done.stderr
    run = (tmp / "out" / "run.trec").read_text().splitlines()
    assert {line.split()[0] for line in run} == {"q1", "q2"}  # only judged queries are searched


def test_missing_judged_document_warning_names_its_own_line(results) -> None:
    tmp, done = results["search-some-judged-documents-missing"]
    assert f"{tmp}/qrels.tsv:3)" in done.stderr, done.stderr


def test_ignore_unjudged_makes_evaluate_pass(results) -> None:
    tmp, done = results["evaluate-ignore-unjudged"]
    assert done.returncode == 0, done.stderr
    values = json.loads(done.stdout)
    assert set(values) == {"mrr@10", "recall@50", "recall@1000", "ndcg@10"}
    assert all(0.0 <= v <= 1.0 for v in values.values())
    assert (tmp / "out" / "per-query.tsv").is_file()


# -- issue 21: what the commands that succeed wrote ---------------------------------------------------------------
def test_a_file_named_dash_given_as_dot_slash_dash_is_the_file_not_stdin(results) -> None:
    tmp, done = results["evaluate-run-named-dash"]
    assert done.returncode == 0, done.stderr
    assert list(json.loads(done.stdout)) == ["ndcg@10"]  # and the metric's name in lower case


def test_encode_output_dash_is_stdout(results) -> None:
    tmp, done = results["encode-output-dash-is-stdout"]
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(b"SIMLM-EMB\x01\n") and not (tmp / "-").exists()


def test_fuse_output_dash_is_stdout(results) -> None:
    tmp, done = results["fuse-output-dash-is-stdout"]
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert lines and all(len(line.split()) == 6 and line.endswith(" simlm-fuse") for line in lines), lines
    assert not (tmp / "-").exists() and not (tmp / "-.fuse.json").exists()


@pytest.mark.parametrize(
    ("error", "expect"),
    [
        ("Error in faiss::FileIOWriter: write error in {tmp}: 0 != 96 (No space left on device)", "{out}: No space left on device"),
        ("Error in faiss::write_index: unsupported index type", "{out}: cannot write index.faiss (Error in faiss::write_index: unsupported"),
    ],
    ids=["full-disk", "other-faiss-error"],
)  # fmt: skip
def test_index_that_faiss_cannot_write_is_one_line(tmp_path, monkeypatch, capsys, error: str, expect: str) -> None:
    """A full disk during `simlm index` was a RuntimeError traceback from faiss::write_index (issue 21); fuse,
    encode and evaluate already said `FILE: No space left on device`. faiss is made to fail as it does on ENOSPC."""
    import sys

    import faiss

    from simlm_cli.cli import main
    from tests.commands.conftest import write_random_stream

    write_random_stream(tmp_path / "x.emb", {"model": "m", "pooling": "cls", "normalize": True}, count=20, dim=8)
    out = tmp_path / "out" / "idx"

    def write_index(index, path):
        raise RuntimeError(error.format(tmp=path))

    monkeypatch.setattr(faiss, "write_index", write_index)
    monkeypatch.setattr(sys, "argv", ["simlm", "index", str(tmp_path / "x.emb"), "--output", str(out)])
    with pytest.raises(SystemExit) as caught:
        main()
    assert caught.value.code == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith(f"simlm: error: {expect.format(out=out)}"), lines
    assert not out.exists() and not [p.name for p in out.parent.iterdir() if p.name.startswith(".")]
