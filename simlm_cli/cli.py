"""The `simlm` command: one Typer app, one module per subcommand under `simlm_cli.commands`.

Command modules import torch, faiss or pyserini inside their functions, so `simlm --help` stays fast.
"""

from __future__ import annotations

import os
import sys

import typer

from simlm_cli import __version__
from simlm_cli.commands import distill, encode, env, evaluate, fuse, index, mine, pretrain, rerank, search, train
from simlm_cli.commands.options import example
from simlm_cli.errors import SimlmError

app = typer.Typer(
    name="simlm",
    help="Dense passage retrieval the SimLM way: pretrain, encode, index, search and evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Click's plain help layout, not Rich's table: at 80 columns Rich's six-column table cut option names short
    # (`--query-max-le…`) and left 13 columns for descriptions; this one keeps names whole and wraps descriptions.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=example("simlm encode --model DIR --corpus corpus.jsonl | simlm index --output idx"),
)
for module in (encode, index, search, evaluate, fuse, pretrain, mine, train, rerank, distill, env):
    module.register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"simlm {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Dense passage retrieval the SimLM way."""


INTERRUPTED = (
    "simlm: interrupted; every output is written whole or not at all, so nothing partial was left (a training run "
    "keeps its checkpoints: --resume continues from the last)"
)


def _usage_error(err: typer.TyperException) -> int:
    """A usage mistake (a bad option value, an unknown command, an unreadable path) as one line, like every other
    error, with where to look; `simlm` alone still shows the help.

    Typer's public API only: since 0.28 every error its (vendored) click raises is a `typer.TyperException`, and
    a usage error carries the context (`ctx`) of the command it was raised in."""
    from rich.markup import escape

    from simlm_cli.console import console

    ctx = getattr(err, "ctx", None)
    if ctx is not None and err.format_message() == ctx.get_help():  # `simlm` alone: the error is the help text
        err.show()
        return err.exit_code
    message = " ".join(err.format_message().split())
    if ctx is not None:
        message += f" (see `{ctx.command_path} -h`)"
    console.print(f"[red]simlm: error:[/red] {escape(message)}")
    return err.exit_code


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from rich.markup import escape

    from simlm_cli.console import console

    try:
        # standalone_mode=False: usage errors come here as exceptions instead of Typer's multi-line box.
        code = app(prog_name="simlm", standalone_mode=False)
    except typer.TyperException as err:
        sys.exit(_usage_error(err))
    except typer.Abort:  # EOF at a prompt
        console.print(f"[red]{INTERRUPTED}[/red]")
        sys.exit(130)
    except SimlmError as err:
        console.print(f"[red]simlm: error:[/red] {escape(str(err))}")
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        console.print(f"[red]{INTERRUPTED}[/red]")
        sys.exit(130)
    except BrokenPipeError:
        # The reader of our stdout went away (e.g. `| head`); nothing more to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except OSError as err:
        # An output that cannot be written (permissions, a full disk, a file where a directory should be): the
        # system's own words, on one line. Paths the user named are the usual cause, so exit 2 as for user errors.
        where = f"{err.filename}: " if err.filename else ""
        console.print(f"[red]simlm: error:[/red] {escape(where + (err.strerror or str(err)))}")
        sys.exit(2)
    if code == 130:  # Typer turns Ctrl-C into exit code 130, silently
        console.print(f"[red]{INTERRUPTED}[/red]")
    if isinstance(code, int) and not isinstance(code, bool):  # an Exit's code; commands themselves return None
        sys.exit(code)
