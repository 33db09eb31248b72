"""recipes/paper_chain.sh passes the options that make it the authors' pipeline (issue 23, item 3).

The chain's dry run is driven here with every `simlm` command replaced by a stub that records its command line
(and answers `simlm evaluate` with `{}`), in a copy of recipes/ whose set-up step does nothing: seconds, not the
minutes of the real dry runs in test_recipes.py, and the exact flags each stage received.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

STUB = """#!/usr/bin/env bash
printf '%s\\n' "$*" >> "$SIMLM_CALLS"
if [ "$1" = evaluate ]; then echo '{}'; fi
"""


def _commands(tmp_path: Path, recipe: str, *args: str) -> list[list[str]]:
    """Each `simlm` command line the recipe ran under --dry-run, split into words."""
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "recipes", root / "recipes")
    (root / "tests").mkdir()
    os.symlink(ROOT / "tests" / "data", root / "tests" / "data")
    (root / "scripts").mkdir()
    (root / "scripts" / "setup.sh").write_text("exit 0\n")  # no install: the stubs below stand in for simlm
    stubs = root / "stubs"
    stubs.mkdir()
    (stubs / "simlm").write_text(STUB)
    (stubs / "simlm").chmod(0o755)
    (root / ".venv" / "bin").mkdir(parents=True)
    # The recipe's `. .venv/bin/activate` puts the stubs first and this interpreter (for report.py) next.
    path = f"{stubs}:{Path(sys.executable).parent}:{os.environ['PATH']}"
    (root / ".venv" / "bin" / "activate").write_text(f"export PATH='{path}'\n")
    calls = tmp_path / "calls.txt"
    done = subprocess.run(
        ["bash", str(root / "recipes" / recipe), "--output", str(tmp_path / "out"), "--dry-run", *args],
        cwd=root, capture_output=True, text=True, timeout=120, env=os.environ | {"SIMLM_CALLS": str(calls)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return [line.split() for line in calls.read_text().splitlines()]


def _value(words: list[str], flag: str) -> str | None:
    return words[words.index(flag) + 1] if flag in words else None


def _only(commands: list[list[str]], *prefix: str) -> list[list[str]]:
    found = [words for words in commands if words[: len(prefix)] == list(prefix)]
    assert found, f"no `simlm {' '.join(prefix)}` in the recipe"
    return found


@pytest.mark.parametrize(
    ("recipe", "group", "global_batches"),
    [("msmarco.sh", "64", {"train": "64", "rerank": "64", "distill": "64"}),
     ("nq.sh", "32", {"train": "32", "rerank": "32", "distill": "32"})],
)  # fmt: skip
def test_the_paper_chain_passes_the_authors_settings(tmp_path, recipe, group, global_batches):
    commands = _commands(tmp_path, recipe)
    # The re-ranker scores the whole group, back-propagates through the positive + the 15 hardest negatives.
    (rerank,) = _only(commands, "rerank", "train")
    assert _value(rerank, "--group-size") == group and _value(rerank, "--backprop-top") == "16"
    # Global batches (queries per step over all GPUs), never a per-process --batch-size.
    assert _value(rerank, "--global-batch-size") == global_batches["rerank"]
    for name in ("train", "distill"):
        for words in _only(commands, name):
            assert _value(words, "--global-batch-size") == global_batches[name], words
    assert not [words for words in commands if "--batch-size" in words and words[0] in ("train", "distill")]
    assert "--batch-size" not in rerank
    # Every mined negative gets a teacher score: distill then draws its negatives from all of them.
    (score,) = _only(commands, "rerank", "score")
    assert "--max-negatives" not in score
    (distill,) = _only(commands, "distill")
    assert _value(distill, "--train-file") == _value(score, "--output")
