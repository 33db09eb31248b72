"""A missing required option is one `simlm: error: --FLAG is required` line and exit 2, not click's boxed usage.

The commands are started together (module fixture `results`); each fails before importing torch, so it is quick.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

# (command, the options given, the missing flag the error must name: the first missing one, in declaration order)
CASES = {
    "mine-no-queries": (["mine"], ["--qrels", "q.tsv", "--output", "out.jsonl"], "--queries"),
    "mine-no-output": (["mine"], ["--queries", "q.tsv", "--qrels", "q.tsv", "--run", "r.trec"], "--output"),
    "mine-nothing": (["mine"], [], "--queries"),
    "rerank-run-no-model": (
        ["rerank", "run"], ["--run", "r.trec", "--queries", "q.tsv", "--corpus", "c.jsonl", "--output", "o"], "--model"
    ),
    "rerank-run-no-corpus": (
        ["rerank", "run"], ["--model", "m", "--run", "r.trec", "--queries", "q.tsv", "--output", "o"], "--corpus"
    ),
    "rerank-score-no-train-file": (
        ["rerank", "score"], ["--model", "m", "--corpus", "c.jsonl", "--output", "o"], "--train-file"
    ),
}  # fmt: skip
# --help: each command's required flags, whose help text must say so
HELP = {"help-mine": ["mine"], "help-rerank-run": ["rerank", "run"], "help-rerank-score": ["rerank", "score"]}
REQUIRED = {
    "help-mine": ["--queries", "--qrels", "--output"],
    "help-rerank-run": ["--model", "--run", "--queries", "--corpus", "--output"],
    "help-rerank-score": ["--model", "--train-file", "--corpus", "--output"],
}


@pytest.fixture(scope="module")
def results(cli_jobs, tmp_path_factory) -> dict[str, SimpleNamespace]:
    root = tmp_path_factory.mktemp("required")
    jobs = {name: cli_jobs.run([*command, *given], cwd=root) for name, (command, given, _) in CASES.items()}
    helps = {name: cli_jobs.run([*command, "--help"], cwd=root) for name, command in HELP.items()}
    return {name: job.result() for name, job in {**jobs, **helps}.items()}


@pytest.mark.parametrize("name", CASES)
def test_missing_required_option_is_one_line(results, name: str) -> None:
    done, flag = results[name], CASES[name][2]
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [f"simlm: error: {flag} is required"]


@pytest.mark.parametrize("name", HELP)
def test_help_says_which_options_are_required(results, name: str) -> None:
    done = results[name]
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode() if isinstance(done.stdout, bytes) else done.stdout
    # Rich wraps the help into table rows: a required flag's row (or the row after it) carries "(required)".
    rows = text.splitlines()
    for flag in REQUIRED[name]:
        at = next(i for i, row in enumerate(rows) if f" {flag} " in row or row.rstrip().endswith(f" {flag}"))
        assert "(required)" in " ".join(rows[at : at + 2]), f"{flag}:\n{text}"
    assert text.count("(required)") == len(REQUIRED[name])
