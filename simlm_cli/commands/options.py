"""Options shared by several commands, declared once, and the checks and conversions of them that several
commands share (`require`, `trainer_config`)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from simlm_cli import dry_run
from simlm_cli.commands.config import ConfiguredCommand
from simlm_cli.device import CUDA_BATCH_TOKENS, Backend, Precision, TrainingPrecision
from simlm_cli.errors import SimlmError
from simlm_cli.index import DEFAULT_B, DEFAULT_K1, DEFAULT_THREADS, SearchBackend
from simlm_cli.io.corpus import CorpusFormat
from simlm_cli.io.qrels import QrelsFormat
from simlm_cli.io.queries import QueriesFormat


# -- shell completion (`simlm --install-completion`): values Typer cannot know from the option's type -----------
def _starting(values, incomplete: str) -> list[str]:
    return [value for value in values if value.startswith(incomplete)]


def complete_objective(incomplete: str) -> list[str]:
    from simlm_cli.training.pretraining.registry import objective_names

    return _starting(objective_names(), incomplete)


def complete_pooling(incomplete: str) -> list[str]:
    return _starting(("cls", "mean"), incomplete)


def complete_trainer_pooling(incomplete: str) -> list[str]:
    return _starting(("cls", "mean", "model"), incomplete)


def complete_loss(incomplete: str) -> list[str]:
    return _starting(("paper", "full"), incomplete)


def complete_passage_format(incomplete: str) -> list[str]:
    return _starting(("pair", "concat"), incomplete)


Device = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N (under torchrun: this rank's GPU).")
_AUTO_HELP = "auto: bf16 on CUDA (fp16 where bf16 is absent) and on CPUs with AMX/AVX512-BF16, else fp32."
# The inference commands' (encode, search, mine, rerank run/score); training's below has no int8.
PrecisionOpt = typer.Option(
    Precision.auto,
    "--precision",
    help=f"{_AUTO_HELP} int8: int8 weights and activations in OpenVINO on the CPU (never chosen by auto).",
)
TrainingPrecisionOpt = typer.Option(TrainingPrecision.auto, "--precision", help=_AUTO_HELP)
# The inference commands' too; training always runs on PyTorch.
BackendOpt = typer.Option(
    Backend.auto,
    "--backend",
    help="What runs the model: torch, or openvino (CPU only: converted once, checked against PyTorch, cached). "
    "auto: openvino on the CPU, torch on CUDA (SIMLM_BACKEND sets it).",
)
QueriesFormatOpt = typer.Option(
    QueriesFormat.auto, "--queries-format", help="Force the queries format: beir (JSONL) or tsv. Default: per line."
)
QrelsFormatOpt = typer.Option(
    QrelsFormat.auto, "--qrels-format", help="Force the qrels format: beir (3 columns, header) or trec (4)."
)


# Flags whose help says which mode of its command it applies to: declared once here, the help passed in.
def corpus_format_option(help: str = "Force the corpus format.") -> Any:
    return typer.Option(CorpusFormat.auto, "--corpus-format", help=help)


def threads_option(help: str) -> Any:
    return typer.Option(DEFAULT_THREADS, "--threads", min=1, help=help)


CorpusFormatOpt = corpus_format_option()


def _checked_tag(value: str) -> str:
    from simlm_cli.io.runs import check_tag

    try:
        return check_tag(value)
    except SimlmError as err:
        raise typer.BadParameter(str(err)) from None


def tag_option(default: str) -> Any:
    """--tag, checked as the flag is read: a tag with white space would write runs `evaluate` cannot read."""
    return typer.Option(default, "--tag", callback=_checked_tag, help="Run tag (TREC column 6; one word).")


def dry_run_option(help: str) -> Any:
    return typer.Option(False, "--dry-run", help=help)


DryRun = dry_run_option("Shrink the work to a few items, for smoke tests.")
Model = typer.Option(
    None,
    "--model",
    "-m",
    help="HF model directory or hub name. Default: sentence-transformers/all-MiniLM-L6-v2 (embedded weights).",
)
# The encoder settings default to None, "not given": `resolve_settings` then takes the model's own (simlm.json, else
# its sentence-transformers config), else the paper's, and logs where each came from.
_OWN = "Default: the model's own (simlm.json, sentence-transformers config), else"
Pooling = typer.Option(
    None, "--pooling", autocompletion=complete_pooling, help=f"cls (SimLM) or mean. {_OWN} cls (the paper's)."
)
Normalize = typer.Option(None, "--normalize/--no-normalize", help=f"L2-normalise vectors (cosine). {_OWN} on.")
QueryMaxLength = typer.Option(None, "--query-max-length", help=f"Query tokens. {_OWN} 32.")
PassageMaxLength = typer.Option(None, "--passage-max-length", help=f"Passage tokens (title + text). {_OWN} 144.")
PassageFormat = typer.Option(
    None,
    "--passage-format",
    autocompletion=complete_passage_format,
    help="pair: tokenize (title, text), title '-' where there is none, as the SimLM checkpoints do; concat: "
    "title + ' ' + text as MTEB does. Default: the model's own (concat for sentence-transformers models), else pair.",
)
TrainerPooling = typer.Option(
    None,
    "--pooling",
    autocompletion=complete_trainer_pooling,
    help=f"cls (the paper's), mean, or model (the model's own: the same as not giving it). {_OWN} cls.",
)
BatchSize = typer.Option(
    None, "--batch-size", min=1, help="Texts per forward pass. Default: 16 on CPU; on CUDA see --max-batch-tokens."
)
SearchBackendOpt = typer.Option(
    SearchBackend.auto,
    "--search-backend",
    help="Dense: torch (exact mm + top-k in shards, flat indexes; on --device) or faiss. auto: torch on CUDA for "
    "flat indexes unless --gpu (faiss-gpu), faiss otherwise.",
)
SearchShardRows = typer.Option(
    None,
    "--search-shard-rows",
    min=1,
    help="--search-backend torch: index rows scored at a time. Default: from the GPU's free memory; 65536 on CPU.",
)
MaxBatchTokens = typer.Option(
    None,
    "--max-batch-tokens",
    min=1,
    help="Batches of length-sorted texts hold as many as fit this many padded tokens (with --batch-size: both "
    f"bound a batch). Default: {CUDA_BATCH_TOKENS} on CUDA unless --batch-size is given; none on CPU.",
)

# -- the shared trainer's options (pretrain, train, distill, rerank train) ---------------------------------------
# Input files are taken as typed (str, not Path, which turns `./-` into `-`): only the exact `-` is stdin.
TrainFile = typer.Option(
    None, "--train-file", "-t", help="Training JSONL (from `simlm mine`; teacher scores from `simlm rerank score`)."
)
Corpus = typer.Option(None, "--corpus", "-c", help="The passages the training file names (any corpus format, .gz ok).")
OutputDir = typer.Option(
    None, "--output", "-o", help="Output directory: the model (HF format), checkpoints/, train_log.jsonl, loss.png."
)
MaxSteps = typer.Option(None, "--max-steps", help="Optimizer steps (overrides --epochs).")
Epochs = typer.Option(1.0, "--epochs", help="Passes over the training queries (fractions allowed).")
GradAccum = typer.Option(1, "--grad-accum", help="Micro-steps accumulated per optimizer step.")
GlobalBatchSize = typer.Option(
    None,
    "--global-batch-size",
    min=1,
    help="Queries per optimizer step over all processes (the paper's 64), whatever their number: each process "
    "takes G / (processes x --grad-accum), an error if that is not whole. Replaces --batch-size. In-batch negatives "
    "are gathered across processes, so with --grad-accum 1 every query meets the whole global batch's passages.",
)
WeightDecay = typer.Option(0.01, "--weight-decay", help="AdamW weight decay (not on biases/norms).")
WarmupSteps = typer.Option(None, "--warmup-steps", help="Linear warmup steps. Default: 10% of the steps.")
MaxGradNorm = typer.Option(1.0, "--max-grad-norm", help="Gradient clipping norm.")
SaveSteps = typer.Option(1000, "--save-steps", help="Checkpoint every N steps (and at the end).")
SaveEpochs = typer.Option(
    False, "--save-epochs", help="Also write each epoch's model to OUTPUT/epochs/epoch-N (to pick one on a dev split)."
)
SaveTotalLimit = typer.Option(2, "--save-total-limit", min=1, help="Checkpoints kept (the newest).")
LogSteps = typer.Option(10, "--log-steps", help="Log (stderr and train_log.jsonl) every N steps.")
Seed = typer.Option(42, "--seed", help="Seeds initialisation, data order and negative sampling.")
Resume = typer.Option(False, "--resume", help="Continue exactly from the newest checkpoint in --output/checkpoints.")
Overwrite = typer.Option(
    False,
    "--overwrite",
    help="Replace an earlier simlm run in --output (only the files it wrote, listed in its .simlm-run.json). "
    "Without it (or --resume) a non-empty --output is refused.",
)
TrainDryRun = dry_run_option(
    f"{dry_run.TRAIN_STEPS} steps on a few queries with batch {dry_run.TRAIN_BATCH}, for smoke tests."
)
Lr = typer.Option(2e-5, "--lr", help="Peak AdamW learning rate.")


def option_group(into: str, group: dict[str, tuple[type, Any]]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A decorator: a command taking the keyword `into` (a dict) gets `group`'s flags after its own parameters,
    and their values in that dict.

    Typer reads a command's flags from its signature and type hints, so the wrapper shows both, extended."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(command, eval_str=True)
        own = [param for param in signature.parameters.values() if param.name != into]
        added = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
            for name, (kind, option) in group.items()
        ]

        @functools.wraps(command)
        def wrapper(**values: Any) -> None:
            grouped = {name: values.pop(name) for name in group}  # before `values` is passed on without them
            command(**values, **{into: grouped})

        params = [*own, *added]
        wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {param.name: param.annotation for param in params} | {"return": None}
        return wrapper

    return decorate


# The options every fine-tuning command (train, distill, rerank train) shares, name -> (type, option), each
# written once: `trainer_options` adds them to a command and hands their values over as `trainer`.
TRAINER_OPTIONS: dict[str, tuple[type, Any]] = {
    "max_steps": (int, MaxSteps),
    "epochs": (float, Epochs),
    "grad_accum": (int, GradAccum),
    "global_batch_size": (int, GlobalBatchSize),
    "lr": (float, Lr),
    "weight_decay": (float, WeightDecay),
    "warmup_steps": (int, WarmupSteps),
    "max_grad_norm": (float, MaxGradNorm),
    "save_steps": (int, SaveSteps),
    "save_total_limit": (int, SaveTotalLimit),
    "save_epochs": (bool, SaveEpochs),
    "log_steps": (int, LogSteps),
    "seed": (int, Seed),
    "device": (str, Device),
    "precision": (TrainingPrecision, TrainingPrecisionOpt),
    "resume": (bool, Resume),
    "overwrite": (bool, Overwrite),
    "dry_run": (bool, TrainDryRun),
}
trainer_options = option_group("trainer", TRAINER_OPTIONS)


def bm25_options(k1_help: str, b_help: str, threads_help: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Adds BM25's search flags (--k1, --b, --threads) to a command, their values handed over as `bm25`."""
    return option_group(
        "bm25",
        {
            "k1": (float, typer.Option(DEFAULT_K1, "--k1", min=0.0, help=k1_help)),
            "b": (float, typer.Option(DEFAULT_B, "--b", min=0.0, max=1.0, help=b_help)),
            "threads": (int, threads_option(threads_help)),
        },
    )


# -- the bi-encoder fine-tuning commands' options (train, distill), added by `retriever_options` -----------------
RetrieverBatchSize = typer.Option(None, "--batch-size", help="Queries per process per micro-step. Default 16 on CPU.")


def retriever_options(
    negatives: tuple[int, str], temperature_help: str, loss_help: str
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Adds train's and distill's bi-encoder flags to a command, their values handed over as `retriever`; the
    defaults and help that differ between the two commands, a (default, help) pair and helps, are passed in. The
    encoder settings are `simlm encode`'s, resolved the same way."""
    return option_group(
        "retriever",
        {
            "corpus_format": (CorpusFormat, CorpusFormatOpt),
            "pooling": (str, TrainerPooling),
            "normalize": (bool, Normalize),
            "query_max_length": (int, QueryMaxLength),
            "passage_max_length": (int, PassageMaxLength),
            "passage_format": (str, PassageFormat),
            "negatives": (int, typer.Option(negatives[0], "--negatives", "-n", help=negatives[1])),
            "temperature": (float, typer.Option(0.02, "--temperature", help=temperature_help)),
            "loss": (str, typer.Option("paper", "--loss", autocompletion=complete_loss, help=loss_help)),
            "batch_size": (int, RetrieverBatchSize),
        },
    )


def retriever_training(
    objective: str, paths: tuple[str | None, str | None, Path | None], model: str | None, **values: Any
) -> tuple[Any, Any]:
    """train's and distill's `RetrieverSpec` and `TrainConfig` from their options: `paths` (--train-file, --corpus,
    --output), --model, the `retriever` and `trainer` groups, and the command's own spec values (distill's --alpha)."""
    from simlm_cli.pipeline.train import RetrieverSpec

    train_file, corpus, output = paths
    trainer = values.pop("trainer")
    spec_values = values.pop("retriever") | values
    # the trainer's, not the spec's: they say how to read and batch the data
    loading = {name: spec_values.pop(name) for name in ("corpus_format", "batch_size")}
    pooling = spec_values.pop("pooling")
    spec = RetrieverSpec(
        train_file=str(train_file) if train_file else "",
        pooling=None if pooling == "model" else pooling,  # model: the model's own, as when not given
        **spec_values,
    )
    return spec, trainer_config(objective, train_file, corpus, output, trainer, model=model, **loading)


def example(command: str, width: int = 74) -> str:
    """A help epilog showing the command line a user would most often type, kept whole (Click's `\b` stops the
    re-wrapping) and broken before an option, with shell line continuations, where it would pass `width`."""
    pieces: list[str] = []  # each option with its value(s)
    for word in command.split(" "):
        if pieces and not word.startswith("-"):
            pieces[-1] += " " + word
        else:
            pieces.append(word)
    lines, line = [], ""
    for piece in pieces:
        if line and len(line) + 1 + len(piece) > width:
            lines.append(line + " \\")
            line = "    " + piece
        else:
            line = f"{line} {piece}" if line else piece
    lines.append(line)
    return "\b\nExample:\n" + "\n".join("  " + text for text in lines)


def registrar(
    command: Callable[..., None], short_help: str, epilog: str, **settings: Any
) -> Callable[[typer.Typer], None]:
    """A command module's `register(app)`: `command` under its function's name, with its one-line help, its
    epilog (`example`) and --config (`ConfiguredCommand`); `settings` go to `app.command` as they are."""

    def register(app: typer.Typer) -> None:
        app.command(command.__name__, short_help=short_help, epilog=epilog, cls=ConfiguredCommand, **settings)(command)

    return register


def require(*flags: tuple[str, object]) -> None:
    """Required options default to None and are checked here: a missing one is one error line, not click's box."""
    for flag, value in flags:
        if value is None:
            raise SimlmError(f"{flag} is required")


def trainer_config(
    objective: str,
    train_file: str | None,
    corpus: str | None,
    output: Path | None,
    trainer: dict[str, Any],
    **kw: Any,
) -> Any:
    """The shared trainer's configuration (a `TrainConfig`) from a command's options: `trainer` (from
    `trainer_options`) and the command's own in `kw` (required ones checked here)."""
    # torch comes with the trainer: imported when a training command runs, not when the CLI starts.
    from simlm_cli.commands.config import resolved_options
    from simlm_cli.training.run_dir import check_train_output
    from simlm_cli.training.trainer import TrainConfig

    require(("--train-file", train_file), ("--corpus", corpus), ("--output", output))
    # before loading a model or reading the data
    check_train_output(output, trainer["resume"], trainer["overwrite"], [train_file, corpus, kw.get("model")])
    kw |= trainer
    # --max-steps, when given, overrides --epochs: the trainer then counts steps, not passes
    max_steps, epochs = kw.pop("max_steps"), kw.pop("epochs")
    return TrainConfig(
        objective=objective, corpus=str(corpus), output=str(output), train_file=str(train_file),
        max_steps=max_steps if max_steps is not None else 10**9, epochs=None if max_steps is not None else epochs,
        run_config=resolved_options(), **kw,
    )  # fmt: skip
