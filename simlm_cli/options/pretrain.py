"""`simlm pretrain`'s config: continue pretraining an encoder with a pluggable objective (rlm, mlm, ...). The
objective's own options are not flags of this config: they are read from the command line (`--name value`, or
`--option name=value`) against the objective's declaration."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import typer

from simlm_cli.defaults import SEED
from simlm_cli.flags import example, flag, group
from simlm_cli.io.corpus import CorpusFormat
from simlm_cli.models.settings import PAPER_SETTINGS
from simlm_cli.options.shared import corpus_format_flag, model_flag
from simlm_cli.options.training import RunControl
from simlm_cli.training.pretraining.registry import TrainOnly

if TYPE_CHECKING:
    from simlm_cli.training.trainer import TrainConfig

EPILOG = (
    "Objective options go on the command line as --name value (or --option name=value); see "
    "`simlm pretrain --list-objectives`, or `simlm pretrain --objective NAME --help` for one objective's options.\n\n"
    + example("simlm pretrain --objective rlm --corpus corpus.jsonl --output pretrained --max-steps 1000")
)


def complete_objective(incomplete: str) -> list[str]:
    from simlm_cli.training.pretraining.registry import objective_names

    return [name for name in objective_names() if name.startswith(incomplete)]


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


@dataclass(frozen=True, kw_only=True)
class PretrainConfig:
    objective: str = flag(
        "--objective",
        default="rlm",
        is_eager=True,
        autocompletion=complete_objective,
        callback=_objective_help,
        help="Pretraining objective (a `simlm.objectives` entry point): rlm, mlm, enc-dec-mlm, rtd, autoencoder, "
        "condenser.",
    )
    corpus: str = flag(
        "--corpus", "-c", help="BEIR corpus.jsonl, MS MARCO/DPR TSV or Pyserini JSONL (.gz ok): title + text."
    )
    output: str = flag(
        "--output",
        "-o",
        help="Directory: the encoder (HF format, for `simlm encode --model`), objective/ parts, checkpoints/, "
        "train_log.jsonl and loss.png.",
    )
    model: str | None = model_flag()
    corpus_format: CorpusFormat = corpus_format_flag()
    option: list[str] | None = flag(
        "--option", "-O", default=None, help="An objective option as name=value (repeatable); same as --name value."
    )
    train_only: TrainOnly = flag(
        "--train-only",
        default=TrainOnly.all,
        help="Which parameters train. head: only the objective's prediction head (mlm: the MLM head, fresh when the "
        "checkpoint has none), the encoder frozen and saved bit-identical; the output is then a masked LM for "
        "rlm/rtd's --generator, or a start whose head no longer sends a random head's loss into the encoder.",
    )
    max_steps: int = flag("--max-steps", default=10000, help="Optimizer steps (the paper: 80,000).")
    batch_size: int | None = flag(
        "--batch-size",
        default=None,
        help="Passages per process per micro-step. Default: 16 on CPU, 64 on GPU (the paper: 64 per GPU x 8 GPUs x "
        "--grad-accum 4 = 2,048 a step).",
    )
    lr: float = flag(
        "--lr",
        default=1e-4,
        help="Peak AdamW learning rate (CPU-sized default; the paper: 3e-4 at 2,048 passages a step).",
    )
    weight_decay: float = flag(
        "--weight-decay", default=0.01, help="AdamW weight decay, not on biases/norms (the paper: 0)."
    )
    warmup_steps: int | None = flag(
        "--warmup-steps",
        default=None,
        help="Linear warmup steps. Default: 10% of --max-steps (the paper: 4,000 of 80,000).",
    )
    max_length: int = flag(
        "--max-length", default=PAPER_SETTINGS["passage_max_length"], help="Tokens per passage (title + text)."
    )
    seed: int = flag("--seed", default=SEED, help="Seeds initialisation, data order and masking.")
    run: RunControl = group(RunControl)
    dry_run: bool = flag(
        "--dry-run", default=False, help="A few steps on a tiny batch of the first passages, for smoke tests."
    )
    list_objectives: bool = flag(
        "--list-objectives",
        default=False,
        is_eager=True,
        callback=_list_objectives,
        help="List the installed objectives and their options, then exit.",
    )

    def train_config(self, objective_options: dict[str, Any], run_config: dict | None) -> TrainConfig:
        """The library's `TrainConfig` for this run, with the objective's resolved options."""
        from simlm_cli.training.trainer import TrainConfig

        return TrainConfig(
            objective=self.objective, corpus=self.corpus, output=self.output, objective_options=objective_options,
            model=self.model, corpus_format=self.corpus_format, max_steps=self.max_steps, batch_size=self.batch_size,
            lr=self.lr, weight_decay=self.weight_decay, warmup_steps=self.warmup_steps, max_length=self.max_length,
            seed=self.seed, dry_run=self.dry_run, train_only=self.train_only.value, run_config=run_config,
            **asdict(self.run),
        )  # fmt: skip
