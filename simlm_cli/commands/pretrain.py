"""`simlm pretrain`: continue pretraining an encoder with a pluggable objective (rlm, mlm, ...)."""

from __future__ import annotations

from pathlib import Path

import typer

from simlm_cli.commands import options
from simlm_cli.flags import command_from
from simlm_cli.options.pretrain import EPILOG, PretrainConfig
from simlm_cli.training.pretraining.registry import TrainOnly


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


def pretrain(config: PretrainConfig, ctx: typer.Context) -> None:
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
    from simlm_cli.training.trainer import Trainer

    # before loading a model or reading the corpus
    check_train_output(config.output, config.run.resume, config.run.overwrite, [config.corpus, config.model])
    cls = load_objective(config.objective)
    pairs = parse_extra_args(list(ctx.args))
    for item in config.option or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SimlmError(f"--option {item!r}: expected name=value")
        pairs.append((key.strip().lstrip("-"), value))
    # pretrain's own flags, read from the command (--config included), for the hint on a mistyped objective option
    values = resolve_options(cls, pairs, tuple(o for p in ctx.command.params for o in p.opts if o.startswith("--")))
    model_path = resolve_model_path(config.model)
    tokenizer = load_tokenizer(model_path)

    def build(path: str, tok, log):
        built = cls(path, tok, values, log)
        if (Path(path) / EXTRAS_DIR).is_dir():
            built.load_extras(Path(path))
        if config.train_only is TrainOnly.head:
            built.train_only_heads()
        return built

    train_config = config.train_config(values, _run_config(pairs, bool(ctx.args)))
    Trainer(train_config, build, tokenizer, model_path, log=info).run()


register = options.registrar(
    command_from(PretrainConfig, pretrain, context=True),
    "Corpus -> pretrained encoder (rlm, mlm, ... objectives).",
    EPILOG,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
