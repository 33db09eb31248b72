"""What the command modules share beyond their configs' flags (`simlm_cli.options`): the help epilog, the
registration with --config, and `pretrain`'s own declarations (its flags are read from the objective)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from simlm_cli.commands.config import ConfiguredCommand
from simlm_cli.errors import SimlmError


def complete_objective(incomplete: str) -> list[str]:
    from simlm_cli.training.pretraining.registry import objective_names

    return [name for name in objective_names() if name.startswith(incomplete)]


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
