"""Everything human-readable goes to stderr, so stdout stays free for streams, runs and JSON."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True, highlight=False, soft_wrap=True)


def info(message: str) -> None:
    console.print(f"[dim]simlm:[/dim] {escape(message)}")


def warn(message: str) -> None:
    console.print(f"[yellow]simlm: warning:[/yellow] {escape(message)}")


def progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        # The bar goes when the work ends (each command then prints a summary line), so a failure leaves the
        # error as the only line on stderr.
        transient=True,
    )
