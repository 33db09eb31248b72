"""Figures on the shape of the code, for before/after notes on a refactoring (issue 11).

    python scripts/code_stats.py [ROOT]

Prints, for the Python files under ROOT's simlm_cli/ and plugins/ (tests, benchmarks and recipes are not library
code): the largest functions, the imports written inside functions (all, and those of simlm's own modules), and
how many times each CLI flag ("--corpus-format") is declared across simlm_cli/commands/.
"""

from __future__ import annotations

import argparse
import ast
import statistics
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

OWN_PACKAGES = ("simlm_cli", "simlm_objectives")
LIBRARY_DIRS = ("simlm_cli", "plugins")
OPTION_CALLS = {"Option", "Argument"}


def python_files(root: Path, dirs: tuple[str, ...]) -> list[Path]:
    return sorted(path for name in dirs for path in (root / name).rglob("*.py") if ".venv" not in path.parts)


def functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def is_own(node: ast.Import | ast.ImportFrom) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or (node.module or "").split(".")[0] in OWN_PACKAGES
    return any(alias.name.split(".")[0] in OWN_PACKAGES for alias in node.names)


def inner_imports(function: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Imports in a function's own body (a nested function's are counted once, under the nested one)."""
    found, stack = [], list(ast.iter_child_nodes(function))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            stack.extend(ast.iter_child_nodes(node))
    return found


def declared_flags(tree: ast.AST) -> Iterator[str]:
    """The long flags named in typer.Option(...)/Argument(...) calls; "--x/--no-x" counts as "--x"."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name not in OPTION_CALLS:
            continue
        for arg in node.args:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("--"):
                yield arg.value.split("/")[0]


def report(root: Path, top: int) -> list[str]:
    sizes: list[tuple[int, str, str]] = []
    imports = own = 0
    for path in python_files(root, LIBRARY_DIRS):
        tree = ast.parse(path.read_text(), str(path))
        for function in functions(tree):
            sizes.append((function.end_lineno - function.lineno + 1, function.name, str(path.relative_to(root))))
            found = inner_imports(function)
            imports += len(found)
            own += sum(is_own(node) for node in found)
    flags: Counter[str] = Counter()
    for path in python_files(root, ("simlm_cli/commands",)):
        flags.update(declared_flags(ast.parse(path.read_text(), str(path))))
    sizes.sort(reverse=True)
    lines = [f"largest functions (of {len(sizes)}):"]
    lines += [f"  {length:4d} lines  {name}  ({where})" for length, name, where in sizes[:top]]
    lines.append(f"imports inside functions: {imports} ({own} of simlm's own modules, {imports - own} third-party)")
    counts = list(flags.values()) or [0]
    repeated = {flag: n for flag, n in flags.items() if n > 1}
    lines.append(
        f"options declared per flag (simlm_cli/commands): {len(flags)} flags, max {max(counts)}, "
        f"mean {statistics.mean(counts):.2f}, {len(repeated)} declared more than once"
    )
    lines += [f"  {n}x {flag}" for flag, n in sorted(repeated.items(), key=lambda item: (-item[1], item[0]))]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=".", type=Path, help="The checkout (default: here).")
    parser.add_argument("--top", type=int, default=5, help="How many of the largest functions to list.")
    args = parser.parse_args()
    print("\n".join(report(args.root, args.top)))


if __name__ == "__main__":
    main()
