"""Flag groups several commands share, each flag declared once with its default and help."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from simlm_cli.device import Backend, Precision
from simlm_cli.flags import flag, group
from simlm_cli.index import DEFAULT_B, DEFAULT_K1, DEFAULT_THREADS, SearchBackend
from simlm_cli.io.corpus import CorpusFormat
from simlm_cli.io.qrels import QrelsFormat
from simlm_cli.io.queries import QueriesFormat
from simlm_cli.io.runs import RunFormat

if TYPE_CHECKING:
    from simlm_cli.device import Runtime
    from simlm_cli.models.settings import EncoderSettings

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


# Flags several configs take, each declared here once; a command whose help needs its own words passes them in.
def corpus_format_flag(help: str = "Force the corpus format.") -> Any:
    return flag("--corpus-format", default=CorpusFormat.auto, help=help)


def run_format_flag(help: str = "Force the run format.") -> Any:
    return flag("--run-format", default=RunFormat.auto, help=help)


def queries_format_flag() -> Any:
    return flag(
        "--queries-format",
        default=QueriesFormat.auto,
        help="Force the queries format: beir (JSONL) or tsv. Default: per line.",
    )


def qrels_format_flag() -> Any:
    return flag(
        "--qrels-format", default=QrelsFormat.auto, help="Force the qrels format: beir (3 columns, header) or trec (4)."
    )


def dry_run_flag(help: str = DRY_RUN_HELP) -> Any:
    return flag("--dry-run", default=False, help=help)


def model_flag() -> Any:
    return flag(
        "--model",
        "-m",
        default=None,
        help="HF model directory or hub name. Default: sentence-transformers/all-MiniLM-L6-v2 (embedded weights).",
    )


def device_flag() -> Any:
    return flag("--device", default="auto", help=DEVICE_HELP)


@dataclass(frozen=True, kw_only=True)
class BM25Search:
    """Lucene BM25's search parameters (`search`, `mine --index`)."""

    k1: float = flag("--k1", default=DEFAULT_K1, min=0.0, help="BM25: k1 (Anserini's BEIR default 0.9).")
    b: float = flag("--b", default=DEFAULT_B, min=0.0, max=1.0, help="BM25: b (Anserini's BEIR default 0.4).")
    threads: int = flag("--threads", default=DEFAULT_THREADS, min=1, help="BM25: search threads.")


@dataclass(frozen=True, kw_only=True)
class Inference:
    """Where and how a model runs for inference (`encode`, `search`, `mine --index`, `rerank run/score`)."""

    device: str = device_flag()
    precision: Precision = flag("--precision", default=Precision.auto, help=PRECISION_HELP)
    backend: Backend = flag("--backend", default=Backend.auto, help=BACKEND_HELP)

    def resolve(self) -> Runtime:
        """The device, precision and backend these flags ask for, checked against this machine."""
        from simlm_cli.device import resolve_runtime

        return resolve_runtime(self.device, self.precision, backend=self.backend)


# The encoder settings default to None, "not given": `resolve_settings` then takes the model's own (simlm.json, else
# its sentence-transformers config), else the paper's, and logs where each came from.
_OWN = "Default: the model's own (simlm.json, sentence-transformers config), else"


def complete_from(values: tuple[str, ...]) -> Any:
    """Shell completion: the values that start with what was typed."""
    return lambda incomplete: [value for value in values if value.startswith(incomplete)]


@dataclass(frozen=True, kw_only=True)
class TextEncoding:
    """How a model turns text into one vector (`encode`, `train`, `distill`); None: not given."""

    pooling: str | None = flag(
        "--pooling",
        default=None,
        autocompletion=complete_from(("cls", "mean", "model")),
        help=f"cls (the paper's), mean, or model (the model's own: the same as not giving it). {_OWN} cls.",
    )
    normalize: bool | None = flag(
        "--normalize/--no-normalize", default=None, help=f"L2-normalise vectors (cosine). {_OWN} on."
    )
    query_max_length: int | None = flag("--query-max-length", default=None, help=f"Query tokens. {_OWN} 32.")
    passage_max_length: int | None = flag(
        "--passage-max-length", default=None, help=f"Passage tokens (title + text). {_OWN} 144."
    )
    passage_format: str | None = flag(
        "--passage-format",
        default=None,
        autocompletion=complete_from(("pair", "concat")),
        help="pair: tokenize (title, text), title '-' where there is none, as the SimLM checkpoints do; concat: "
        "title + ' ' + text as MTEB does. Default: the model's own (concat for sentence-transformers models), else "
        "pair.",
    )

    def overrides(self) -> dict[str, Any]:
        """The settings given, by `resolve_settings`'s keywords (None: the model's own; pooling `model` too)."""
        values = asdict(self)
        if values["pooling"] == "model":
            values["pooling"] = None
        return values


@dataclass(frozen=True, kw_only=True)
class EncoderFlags:
    """The model and how it encodes (`encode`); `resolve` fills what is not given."""

    model: str | None = model_flag()
    encoding: TextEncoding = group(TextEncoding)

    def resolve(self) -> EncoderSettings:
        """The settings: these flags, else the model's own, else the paper's (`resolve_settings`)."""
        from simlm_cli.models.settings import resolve_settings

        return resolve_settings(self.model, **self.encoding.overrides())


@dataclass(frozen=True, kw_only=True)
class QueryEncoding:
    """How a dense index's queries are encoded and searched (`search`, `mine --index`)."""

    model: str | None = flag(
        "--model", "-m", default=None, help="Dense: encode queries with this model instead of the index's."
    )
    batch_size: int | None = flag("--batch-size", default=None, min=1, help="Dense: queries per forward pass.")
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
    runtime: Inference = group(Inference)  # the query encoder's, whatever precision built the index


@dataclass(frozen=True, kw_only=True)
class InputFormats:
    """Forced formats of the query and qrels files (default: detected per line / per file)."""

    queries_format: QueriesFormat = queries_format_flag()
    qrels_format: QrelsFormat = qrels_format_flag()


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
