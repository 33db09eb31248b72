"""`simlm pretrain`: continue pretraining an encoder with a pluggable objective (rlm, mlm, ...)."""

from __future__ import annotations

from pathlib import Path

import typer

from simlm_cli.commands import options
from simlm_cli.defaults import SEED
from simlm_cli.device import TrainingPrecision
from simlm_cli.flags import option_of
from simlm_cli.io.corpus import CorpusFormat
from simlm_cli.models.settings import PAPER_SETTINGS
from simlm_cli.options.shared import EncoderFlags
from simlm_cli.options.training import RetrieverFlags, TrainerFlags
from simlm_cli.training.pretraining.registry import TrainOnly

EPILOG = (
    "Objective options go on the command line as --name value (or --option name=value); see "
    "`simlm pretrain --list-objectives`, or `simlm pretrain --objective NAME --help` for one objective's options.\n\n"
    + options.example("simlm pretrain --objective rlm --corpus corpus.jsonl --output pretrained --max-steps 1000")
)


def _objective_help(ctx: typer.Context, value: str | None) -> str | None:
    """Eager: when --objective comes before --help, the help lists that objective's own options."""
    if value and not ctx.resilient_parsing:
        try:
            from simlm_cli.training.pretraining.registry import describe_options, load_objective

            text = describe_options(load_objective(value))
            lines = text.splitlines()
            ctx.command.epilog = "\n\n".join([f"Objective {lines[0]}", *[line.strip() for line in lines[1:]], EPILOG])
        except Exception:  # an unknown name is reported by the command itself, not while building help
            pass
    return value


def _list_objectives(value: bool) -> None:
    if not value:
        return
    import sys

    from simlm_cli.training.pretraining.registry import all_objectives

    objectives = all_objectives()
    if sys.stdout.isatty():
        from rich.table import Table

        from simlm_cli.console import console

        table = Table(title="simlm pretrain objectives (options: --name value)")
        for column in ("objective", "option", "type", "default", "help"):
            table.add_column(column, overflow="fold")
        for name, cls in objectives.items():
            table.add_row(f"[bold]{name}[/bold]", "", "", "", cls.summary)
            for opt in cls.options:
                table.add_row("", f"--{opt.name}", opt.type.__name__, repr(opt.default), opt.help)
        console.print(table)
    else:
        for name, cls in objectives.items():
            typer.echo(f"{name}\t{cls.summary}")
            for opt in cls.options:
                typer.echo(f"{name}\t--{opt.name}\t{opt.type.__name__}\t{opt.default!r}\t{opt.help}")
    raise typer.Exit()


def _run_config(pairs: list[tuple[str, str]], extra_flags: bool) -> dict | None:
    """The resolved options, the objective's (`--name value` or --option) recorded as --option name=value, the
    form a config file can give back."""
    from simlm_cli.commands.config import resolved_options

    resolved = resolved_options()
    if resolved is None or not pairs:
        return resolved
    options = resolved["options"] | {"option": [f"{key}={value}" for key, value in pairs]}
    sources = resolved["sources"] | ({"option": "flag"} if extra_flags else {})
    return resolved | {"options": options, "sources": sources}


def pretrain(
    ctx: typer.Context,
    objective: str = typer.Option(
        "rlm",
        "--objective",
        is_eager=True,
        autocompletion=options.complete_objective,
        callback=_objective_help,
        help="Pretraining objective (a `simlm.objectives` entry point): rlm, mlm, enc-dec-mlm, rtd, autoencoder, condenser.",
    ),
    corpus: str = typer.Option(
        None, "--corpus", "-c", help="BEIR corpus.jsonl, MS MARCO/DPR TSV or Pyserini JSONL (.gz ok): title + text."
    ),
    output: Path = typer.Option(
        None,
        "--output",
        "-o",
        help="Directory: the encoder (HF format, for `simlm encode --model`), objective/ parts, checkpoints/, "
        "train_log.jsonl and loss.png.",
    ),
    model: str = option_of(EncoderFlags, "model"),
    corpus_format: CorpusFormat = option_of(RetrieverFlags, "corpus_format"),
    option: list[str] = typer.Option(
        None, "--option", "-O", help="An objective option as name=value (repeatable); same as --name value."
    ),
    train_only: TrainOnly = typer.Option(
        TrainOnly.all,
        "--train-only",
        help="Which parameters train. head: only the objective's prediction head (mlm: the MLM head, fresh when the "
        "checkpoint has none), the encoder frozen and saved bit-identical; the output is then a masked LM for "
        "rlm/rtd's --generator, or a start whose head no longer sends a random head's loss into the encoder.",
    ),
    max_steps: int = typer.Option(10000, "--max-steps", help="Optimizer steps (the paper: 80,000)."),
    batch_size: int = typer.Option(
        None,
        "--batch-size",
        help="Passages per process per micro-step. Default: 16 on CPU, 64 on GPU (the paper: 64 per GPU x 8 GPUs x "
        "--grad-accum 4 = 2,048 a step).",
    ),
    grad_accum: int = option_of(TrainerFlags, "grad_accum"),
    lr: float = typer.Option(
        1e-4, "--lr", help="Peak AdamW learning rate (CPU-sized default; the paper: 3e-4 at 2,048 passages a step)."
    ),
    weight_decay: float = typer.Option(
        0.01, "--weight-decay", help="AdamW weight decay, not on biases/norms (the paper: 0)."
    ),
    warmup_steps: int = typer.Option(
        None, "--warmup-steps", help="Linear warmup steps. Default: 10% of --max-steps (the paper: 4,000 of 80,000)."
    ),
    max_grad_norm: float = option_of(TrainerFlags, "max_grad_norm"),
    max_length: int = typer.Option(
        PAPER_SETTINGS["passage_max_length"], "--max-length", help="Tokens per passage (title + text)."
    ),
    save_steps: int = option_of(TrainerFlags, "save_steps"),
    save_total_limit: int = option_of(TrainerFlags, "save_total_limit"),
    log_steps: int = option_of(TrainerFlags, "log_steps"),
    seed: int = typer.Option(SEED, "--seed", help="Seeds initialisation, data order and masking."),
    device: str = option_of(TrainerFlags, "device"),
    precision: TrainingPrecision = option_of(TrainerFlags, "precision"),
    resume: bool = option_of(TrainerFlags, "resume"),
    overwrite: bool = option_of(TrainerFlags, "overwrite"),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="A few steps on a tiny batch of the first passages, for smoke tests."
    ),
    list_objectives: bool = typer.Option(
        False,
        "--list-objectives",
        is_eager=True,
        callback=_list_objectives,
        help="List the installed objectives and their options, then exit.",
    ),
) -> None:
    """Pretrain an encoder for retrieval with a pluggable objective (SimLM's RLM by default).

    Under torchrun each process trains on its own shard of every batch (DDP; gloo on CPU, NCCL on CUDA).
    """
    from simlm_cli.console import info
    from simlm_cli.errors import SimlmError
    from simlm_cli.models.loading import load_tokenizer
    from simlm_cli.models.settings import resolve_model_path
    from simlm_cli.training.pretraining.objective import EXTRAS_DIR
    from simlm_cli.training.pretraining.registry import load_objective, parse_extra_args, resolve_options
    from simlm_cli.training.run_dir import check_train_output
    from simlm_cli.training.trainer import TrainConfig, Trainer

    options.require(("--corpus", corpus), ("--output", output))
    check_train_output(output, resume, overwrite, [corpus, model])  # before loading a model or reading the corpus
    cls = load_objective(objective)
    pairs = parse_extra_args(list(ctx.args))
    for item in option or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SimlmError(f"--option {item!r}: expected name=value")
        pairs.append((key.strip().lstrip("-"), value))
    # pretrain's own flags, read from the command (--config included), for the hint on a mistyped objective option
    values = resolve_options(cls, pairs, tuple(o for p in ctx.command.params for o in p.opts if o.startswith("--")))
    model_path = resolve_model_path(model)
    tokenizer = load_tokenizer(model_path)

    def build(path: str, tok, log):
        built = cls(path, tok, values, log)
        if (Path(path) / EXTRAS_DIR).is_dir():
            built.load_extras(Path(path))
        if train_only is TrainOnly.head:
            built.train_only_heads()
        return built

    config = TrainConfig(
        objective=objective, corpus=str(corpus), output=str(output), objective_options=values, model=model,
        corpus_format=corpus_format, max_steps=max_steps, batch_size=batch_size, grad_accum=grad_accum, lr=lr,
        weight_decay=weight_decay, warmup_steps=warmup_steps, max_grad_norm=max_grad_norm, max_length=max_length,
        save_steps=save_steps, save_total_limit=save_total_limit, log_steps=log_steps, seed=seed, device=device,
        precision=precision, resume=resume, overwrite=overwrite, dry_run=dry_run, train_only=train_only.value,
        run_config=_run_config(pairs, bool(ctx.args)),
    )  # fmt: skip
    Trainer(config, build, tokenizer, model_path, log=info).run()


register = options.registrar(
    pretrain,
    "Corpus -> pretrained encoder (rlm, mlm, ... objectives).",
    EPILOG,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
