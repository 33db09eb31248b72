"""Flag groups several commands share, each flag declared once with its default and help."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simlm_cli.device import Backend, Precision
from simlm_cli.flags import flag
from simlm_cli.index import DEFAULT_B, DEFAULT_K1, DEFAULT_THREADS, SearchBackend
from simlm_cli.io.qrels import QrelsFormat
from simlm_cli.io.queries import QueriesFormat

DEVICE_HELP = "auto, cpu, cuda or cuda:N (under torchrun: this rank's GPU)."
AUTO_PRECISION_HELP = "auto: bf16 on CUDA (fp16 where bf16 is absent) and on CPUs with AMX/AVX512-BF16, else fp32."
PRECISION_HELP = (
    f"{AUTO_PRECISION_HELP} int8: int8 weights and activations in OpenVINO on the CPU (never chosen by auto)."
)
BACKEND_HELP = (
    "What runs the model: torch, or openvino (CPU only: converted once, checked against PyTorch, cached). "
    "auto: openvino on the CPU, torch on CUDA (SIMLM_BACKEND sets it)."
)
DRY_RUN_HELP = "Shrink the work to a few items, for smoke tests."


@dataclass(frozen=True, kw_only=True)
class BM25Search:
    """Lucene BM25's search parameters (`search`, `mine --index`)."""

    k1: float = flag("--k1", default=DEFAULT_K1, min=0.0, help="BM25: k1 (Anserini's BEIR default 0.9).")
    b: float = flag("--b", default=DEFAULT_B, min=0.0, max=1.0, help="BM25: b (Anserini's BEIR default 0.4).")
    threads: int = flag("--threads", default=DEFAULT_THREADS, min=1, help="BM25: search threads.")


@dataclass(frozen=True, kw_only=True)
class QueryEncoding:
    """How a dense index's queries are encoded and searched (`search`, `mine --index`)."""

    model: str | None = flag(
        "--model", "-m", default=None, help="Dense: encode queries with this model instead of the index's."
    )
    batch_size: int | None = flag("--batch-size", default=None, min=1, help="Dense: queries per forward pass.")
    device: str = flag("--device", default="auto", help=DEVICE_HELP)
    search_backend: SearchBackend = flag(
        "--search-backend",
        default=SearchBackend.auto,
        help="Dense: torch (exact mm + top-k in shards, flat indexes; on --device) or faiss. auto: torch on CUDA "
        "for flat indexes unless --gpu (faiss-gpu), faiss otherwise.",
    )
    search_shard_rows: int | None = flag(
        "--search-shard-rows",
        default=None,
        min=1,
        help="--search-backend torch: index rows scored at a time. Default: from the GPU's free memory; 65536 on CPU.",
    )
    precision: Precision = flag(
        "--precision",
        default=Precision.auto,
        help=f"Dense: the query encoder's precision, whatever precision built the index. {PRECISION_HELP}",
    )
    backend: Backend = flag("--backend", default=Backend.auto, help=BACKEND_HELP)


@dataclass(frozen=True, kw_only=True)
class InputFormats:
    """Forced formats of the query and qrels files (default: detected per line / per file)."""

    queries_format: QueriesFormat = flag(
        "--queries-format",
        default=QueriesFormat.auto,
        help="Force the queries format: beir (JSONL) or tsv. Default: per line.",
    )
    qrels_format: QrelsFormat = flag(
        "--qrels-format",
        default=QrelsFormat.auto,
        help="Force the qrels format: beir (3 columns, header) or trec (4).",
    )


def _checked_tag(value: str) -> str:
    from simlm_cli.errors import SimlmError
    from simlm_cli.io.runs import check_tag

    try:
        return check_tag(value)
    except SimlmError as err:
        import typer

        raise typer.BadParameter(str(err)) from None


def tag_flag(default: str) -> Any:
    """--tag, checked as the flag is read: a tag with white space would write runs `evaluate` cannot read."""
    return flag("--tag", default=default, callback=_checked_tag, help="Run tag (TREC column 6; one word).")
