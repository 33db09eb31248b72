"""The recipes re-run into an existing output directory (issue 21, item 2): a trainer now refuses a non-empty
--output of an earlier run unless told --resume or --overwrite, so every trainer a recipe starts passes
--overwrite (the recipe replaces its own earlier models; a directory simlm did not create is still refused)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
TRAINER = re.compile(r"^\s*(?:simlm|launch)\s+(?:train|distill|pretrain|rerank\s+train)\b")


def trainer_commands(script: Path) -> list[str]:
    """Each trainer command line of a script, its backslash continuations joined."""
    joined = re.sub(r"\\\n", " ", script.read_text(encoding="utf-8"))
    lines = [line for line in joined.splitlines() if not line.lstrip().startswith("#")]
    return [line.strip() for line in lines if TRAINER.search(line) and "--list-objectives" not in line]


def test_the_recipes_start_trainers() -> None:
    found = {script.name for script in RECIPES.glob("*.sh") if trainer_commands(script)}
    assert {"beir.sh", "paper_chain.sh", "pretrain_ablation.sh"} <= found, found


@pytest.mark.parametrize("script", sorted(p.name for p in RECIPES.glob("*.sh")))
def test_every_trainer_a_recipe_starts_passes_overwrite(script: str) -> None:
    for command in trainer_commands(RECIPES / script):
        assert "--overwrite" in command.split(), command
