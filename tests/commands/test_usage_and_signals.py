"""Usage errors, Ctrl-C and unwritable outputs through the real CLI (issue 10, items 9-12): one line each."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import SIMLM, cli_env


def _one_error_line(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert len(lines) == 1 and lines[0].startswith("simlm: error: "), done.stderr
    return lines[0]


@pytest.mark.parametrize(
    "args, expect",
    [
        (["search", "-i", "idx", "-q", "q.jsonl", "-k", "0"], "'--k' / '-k'"),
        (["search", "-i", "idx", "-q", "q.jsonl", "-k", "-5"], "'--k' / '-k'"),
        (["search", "-i", "idx", "-q", "q.jsonl", "--format", "xml"], "'--format'"),
        (["no-such-command"], "No such command 'no-such-command'"),
    ],
    ids=["k-zero", "k-negative", "bad-choice", "unknown-command"],
)
def test_usage_errors_are_one_line(run_cli, tmp_path: Path, args: list[str], expect: str) -> None:
    """They printed Typer's multi-line box (issue 10, item 9)."""
    line = _one_error_line(run_cli(args, cwd=tmp_path))
    assert expect in line and "-h`" in line, line


def test_an_unreadable_corpus_is_one_line(run_cli, tmp_path: Path) -> None:
    """A directory given as --corpus (unreadable as a file, even for root) is one line, exit 2 (issue 10, item 9)."""
    (tmp_path / "corpus").mkdir()
    args = ["index", "--bm25", "--corpus", tmp_path / "corpus", "--output", tmp_path / "idx"]
    assert "is a directory" in _one_error_line(run_cli(args))


def test_a_huge_metric_cut_off_is_refused(run_cli, tiny_data, tmp_path: Path) -> None:
    """`ndcg@9223372036854775808` printed 0.0 (issue 10, item 10)."""
    run = tmp_path / "run.trec"
    run.write_text("q1 Q0 d1 1 0.9 t\n")
    args = ["evaluate", "--qrels", tiny_data.qrels, "--run", run, "-M", "ndcg@9223372036854775808"]
    assert "cut-off 9223372036854775808 is too large" in _one_error_line(run_cli(args))


def _wait_until_blocked_on_the_fifo(pid: int, timeout: float = 120.0) -> None:
    """Past the imports (slow on a loaded machine), into the blocking open of the FIFO: Linux shows the process
    waiting for a writer (wchan); elsewhere, a fixed pause."""
    wchan = Path(f"/proc/{pid}/wchan")
    if not wchan.exists():
        time.sleep(4)
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if "wait_for_partner" in wchan.read_text() or "fifo" in wchan.read_text():
                time.sleep(0.2)
                return
        except OSError:
            return  # the process ended: the assertions below say how
        time.sleep(0.1)


def test_ctrl_c_says_interrupted(tiny_data, tmp_path: Path) -> None:
    """Ctrl-C printed a blank line (issue 10, item 11). The command waits on a FIFO no one writes to."""
    fifo = tmp_path / "run.fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen(
        [*SIMLM, "evaluate", "--qrels", str(tiny_data.qrels), "--run", str(fifo)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
        # A runner started in the background of a non-interactive shell ignores SIGINT, and a child inherits that
        # (Python then installs no KeyboardInterrupt handler): give the command the default a terminal gives it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    _wait_until_blocked_on_the_fifo(proc.pid)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    lines = [line for line in err.decode().splitlines() if line.strip()]
    assert proc.returncode == 130, err
    assert len(lines) == 1 and lines[0].startswith("simlm: interrupted; "), err


def test_an_output_that_cannot_be_written_fails_before_the_search(run_cli, tmp_path: Path) -> None:
    """An --output that is a directory (or under a file) is refused first: the index named here does not even exist,
    so an error about the output proves no work ran (issue 10, item 12)."""
    (tmp_path / "out").mkdir()
    args = ["search", "--index", tmp_path / "absent", "--queries", tmp_path / "q.jsonl", "--output", tmp_path / "out"]
    line = _one_error_line(run_cli(args))
    assert f"{tmp_path}/out: is a directory" in line, line
    (tmp_path / "file").write_text("x")
    args[-1] = tmp_path / "file" / "run.trec"
    line = _one_error_line(run_cli(args))
    assert "file is not a directory" in line and ".tmp" not in line, line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_output_in_a_read_only_directory_fails_before_the_search(run_cli, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    args = ["search", "--index", tmp_path / "absent", "--queries", tmp_path / "q.jsonl", "--output", locked / "r.trec"]
    line = _one_error_line(run_cli(args))
    assert f"{locked}/r.trec: cannot be written" in line and ".tmp" not in line, line


def test_a_run_read_from_dev_stdin_is_read_whole(run_cli, tiny_data) -> None:
    """`--run /dev/stdin` (a pipe) said "empty run": format detection had consumed it (issue 10, item 5)."""
    run = b"\xef\xbb\xbfq1 Q0 d1 1 0.9 t\nq2 Q0 d4 1 0.8 t\n"  # with a byte-order mark too (item 6)
    done = run_cli(["evaluate", "--qrels", tiny_data.qrels, "--run", "/dev/stdin", "--json", "-M", "recall@10"],
                   input=run)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().strip() == '{"recall@10": 0.25}'  # half of q1's and q2's, none of q3's and q4's


def test_simlm_imports_no_private_typer_module() -> None:
    """cli.py imported `typer._click` (Typer's vendored click, private: "subject to change"); the usage errors are
    now caught as the public `typer.TyperException`."""
    import ast

    root = Path(__file__).resolve().parents[2] / "simlm_cli"
    private = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            private += [f"{path.name}: {name}" for name in names if name.startswith(("typer._", "click"))]
    assert not private, private
