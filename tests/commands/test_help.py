"""Help that reads at 80 columns and shell completion (issue 15, items 1-2)."""

from __future__ import annotations

import os
import re

import pytest
import typer
from typer.testing import CliRunner

from simlm_cli.cli import app
from tests.conftest import SIMLM, cli_env, run_cli


def _commands() -> list[tuple[list[str], object]]:
    """Every command path (the root, groups and leaves) with its Click command."""
    found = []

    def walk(path: list[str], command) -> None:
        found.append((path, command))
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk([*path, name], sub)

    walk([], typer.main.get_command(app))
    return found


COMMANDS = _commands()


@pytest.mark.parametrize("path, command", COMMANDS, ids=[" ".join(p) or "simlm" for p, _ in COMMANDS])
def test_help_at_80_columns_names_every_option_whole(path, command) -> None:
    """`simlm encode --help` showed `--query-max-le…`; `simlm train --help` cut 7 names (issue 15, item 1)."""
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"}, prog_name="simlm")
    assert result.exit_code == 0, result.output
    text = result.output
    assert "…" not in text, text
    too_wide = [line for line in text.splitlines() if len(line) > 80]
    assert not too_wide, too_wide
    words = set(re.split(r"[\s,/\[\]()]+", text))
    for param in command.params:
        if getattr(param, "hidden", False) or param.param_type_name != "option":
            continue
        for name in [*param.opts, *param.secondary_opts]:
            assert name in words, f"{' '.join(['simlm', *path])} --help: {name} not whole\n{text}"
    if not getattr(command, "commands", None):  # a command a user runs: it shows the line they would type
        assert "Example:\n    simlm " in text, text


def test_the_real_cli_prints_the_same_help_at_80_columns() -> None:
    """Through `python -m simlm_cli` (main(), standalone_mode=False) with a narrow terminal."""
    env = cli_env() | {"COLUMNS": "80"}
    import subprocess

    done = subprocess.run([*SIMLM, "encode", "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    for name in ("--query-max-length", "--passage-max-length", "--passage-format", "--corpus-format"):
        assert name in done.stdout.split(), done.stdout
    assert max(len(line) for line in done.stdout.splitlines()) <= 80


def test_simlm_alone_still_shows_the_help(tmp_path) -> None:
    done = run_cli([], cwd=tmp_path)
    assert done.returncode == 2
    assert "Usage: simlm [OPTIONS] COMMAND" in done.stderr and "encode" in done.stderr, done.stderr


def test_bash_completion_script_and_what_it_completes() -> None:
    """`--show-completion bash` prints the script; the script's protocol then names the commands and the values
    of options whose type alone says nothing: metrics, objectives (issue 15, item 2)."""
    import subprocess

    # Typer's own switch: take the shell named on the command line instead of detecting the parent shell, which
    # fails where the test runner has no shell among its ancestors ("Shell  not supported").
    env = cli_env() | {"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    done = subprocess.run([*SIMLM, "--show-completion", "bash"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    script = done.stdout
    assert "_SIMLM_COMPLETE=complete_bash" in script and "complete -o default -F _simlm_completion simlm" in script

    def complete(words: str) -> list[str]:
        env = cli_env() | {
            "_SIMLM_COMPLETE": "complete_bash",
            "COMP_WORDS": f"simlm {words}",
            "COMP_CWORD": str(len(words.split()) + (1 if words.endswith(" ") or not words else 0)),
        }
        out = subprocess.run(SIMLM, capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout.split()

    commands = complete("")
    for name in ("encode", "index", "search", "evaluate", "fuse", "pretrain", "mine", "train", "distill", "rerank"):
        assert name in commands, commands
    assert "env" in commands
    assert set(complete("rerank ")) >= {"train", "run", "score"}
    assert "ndcg@10" in complete("evaluate -M ") and complete("evaluate --metric rec") == ["recall@100", "recall@1000"]
    assert {"rlm", "mlm", "condenser"} <= set(complete("pretrain --objective "))
    assert complete("index --type ") == ["flat", "hnsw", "ivfpq"]
    assert complete("encode --precision ") == ["auto", "fp32", "bf16", "fp16", "int8"]
    assert complete("train --precision ") == ["auto", "fp32", "bf16", "fp16"]  # training has no int8
    for command in ("encode", "search", "mine", "rerank run", "rerank score"):  # the inference commands
        assert complete(f"{command} --backend ") == ["auto", "torch", "openvino"], command
    assert "--backend" not in complete("train --")  # training runs on PyTorch


def test_install_completion_is_offered() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "80"}, prog_name="simlm")
    assert "--install-completion" in result.output and "--show-completion" in result.output
    assert os.environ.get("_SIMLM_COMPLETE") is None  # the tests never leave the completion mode switched on


def test_an_objectives_own_options_are_whole_at_80_columns() -> None:
    """`simlm pretrain --objective rlm --help` lists rlm's options in the epilog; they are not cut either."""
    from simlm_cli.training.pretraining.registry import load_objective

    result = CliRunner().invoke(app, ["pretrain", "--objective", "rlm", "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    for option in load_objective("rlm").options:
        assert f"--{option.name}" in result.output.split(), option.name


HEAVY = ("torch", "transformers", "faiss", "pyserini", "openvino", "matplotlib", "numpy")


@pytest.mark.parametrize("args", [["--help"], ["encode", "--help"], ["search", "--help"], ["fuse", "--help"]])
def test_help_loads_no_heavy_library(args) -> None:
    """`simlm ... --help` (and argument parsing) loads none of the libraries the work needs (issue 25, item 3):
    torch and transformers cost ~4.5 s of a 10-passage encode's ~5 s here; numpy was a quarter of --help's."""
    import subprocess
    import sys

    code = (
        "import sys; from simlm_cli.cli import app\n"
        f"try: app(prog_name='simlm', args={args!r})\n"
        "except SystemExit: pass\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "", f"loaded by {args}: {done.stdout.splitlines()[-1]}"
