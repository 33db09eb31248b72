"""What the command modules share beyond their configs' flags (`simlm_cli.options`): the help epilog and the
registration with --config."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from simlm_cli.commands.config import ConfiguredCommand
from simlm_cli.flags import example  # noqa: F401  (the commands' epilogs: `options.example`)


def registrar(
    command: Callable[..., None], short_help: str, epilog: str, **settings: Any
) -> Callable[[typer.Typer], None]:
    """A command module's `register(app)`: `command` under its function's name, with its one-line help, its
    epilog (`example`) and --config (`ConfiguredCommand`); `settings` go to `app.command` as they are."""

    def register(app: typer.Typer) -> None:
        app.command(command.__name__, short_help=short_help, epilog=epilog, cls=ConfiguredCommand, **settings)(command)

    return register
