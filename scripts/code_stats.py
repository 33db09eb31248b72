"""Figures on the shape of the code, for before/after notes on a refactoring (issue 11).

    python scripts/code_stats.py [ROOT]

Prints, for the Python files under ROOT's simlm_cli/ and plugins/ (tests, benchmarks and recipes are not library
code): the largest functions, the imports written inside functions (all, and those of simlm's own modules), and
how many times each CLI flag ("--corpus-format") is declared across simlm_cli/commands/ and simlm_cli/options/
(a typer.Option/Argument call or a config field's `flag(...)`/`argument(...)`: a helper that declares a flag for
several configs counts once); and issue 27's figures: the flag declarations (typer.Option/Argument calls written in
commands, `flag`/`argument` fields) against the fields of the option dataclasses (*Config, *Spec, *Options), the places
each shared default (144, 32, 42, 0.05) is written as a literal, the classes of each model, and the files that
name the OpenVINO backend - what adding a backend touches (its modules and its line in `backends.BACKENDS`).
"""

from __future__ import annotations

import argparse
import ast
import re
import statistics
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

OWN_PACKAGES = ("simlm_cli", "simlm_objectives")
LIBRARY_DIRS = ("simlm_cli", "plugins")
OPTION_CALLS = {"Option", "Argument"}
FIELD_CALLS = {"flag", "argument"}  # simlm_cli.flags: a config field that is a flag
FLAG_DIRS = ("simlm_cli/commands", "simlm_cli/options")
CONFIG_SUFFIXES = ("Config", "Spec", "Options")  # the dataclasses that carry a command's options
DEFAULTS = (144, 32, 42, 0.05)  # passage tokens, query tokens, seed, temperature
# A model's classes: the nn.Module, its training subclass and its inference wrapper (names as the code has them).
MODEL_FAMILIES = {"bi-encoder": ("Encoder", "BiEncoder"), "cross-encoder": ("CrossEncoder", "Reranker")}
BACKEND_WORDS = ("openvino", "OvModel")  # how code names the OpenVINO backend (int8 is a precision it runs)


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
    """The long flags named in typer.Option(...)/Argument(...) and flag(...) calls; "--x/--no-x" counts as "--x"."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name not in OPTION_CALLS | FIELD_CALLS:
            continue
        for arg in node.args:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("--"):
                yield arg.value.split("/")[0]


def _call_name(node: ast.Call) -> str:
    return node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")


def _is_typer_option(node: ast.Call) -> bool:
    """typer.Option(...) / typer.Argument(...), not the plugins' own `Option` declarations."""
    func = node.func
    return isinstance(func, ast.Attribute) and func.attr in OPTION_CALLS and getattr(func.value, "id", "") == "typer"


def _is_dataclass(node: ast.ClassDef) -> bool:
    names = [d.func if isinstance(d, ast.Call) else d for d in node.decorator_list]
    return any((n.attr if isinstance(n, ast.Attribute) else getattr(n, "id", "")) == "dataclass" for n in names)


def _model_family(name: str) -> str | None:
    for family, stems in MODEL_FAMILIES.items():
        # a stem alone, or a stem and what follows it (BiEncoderObjective), not its data, settings or loss base
        # class (BiEncoderLoss: a loss module, not a model); `Encoder` only alone (EncoderSettings)
        longer = [stem for stem in stems if stem != "Encoder"]
        if name in stems or any(name.startswith(s) and not name.endswith(("Data", "Settings", "Loss")) for s in longer):
            return family
    return None


def _names_backend(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in BACKEND_WORDS:
            return True
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in BACKEND_WORDS:
            return True
        if isinstance(node, ast.ImportFrom) and any(w in (node.module or "") for w in BACKEND_WORDS):
            return True
        if isinstance(node, ast.Import | ast.ImportFrom) and any(a.name in BACKEND_WORDS for a in node.names):
            return True
        if isinstance(node, ast.Name) and node.id in BACKEND_WORDS:
            return True
    return False


def issue27(root: Path) -> list[str]:
    """Issue 27's figures: each is what it counts, printed with what it found so a reader can check it."""
    options = field_flags = fields = 0
    configs: list[str] = []
    defaults: dict[object, list[str]] = {value: [] for value in DEFAULTS}
    in_text: dict[object, list[str]] = {value: [] for value in DEFAULTS}
    families: dict[str, list[str]] = {family: [] for family in MODEL_FAMILIES}
    backend_files: list[str] = []
    for path in python_files(root, LIBRARY_DIRS):
        tree = ast.parse(path.read_text(), str(path))
        where = str(path.relative_to(root))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _is_typer_option(node):
                options += where != "simlm_cli/flags.py"  # the one call that makes every field's flag
            elif isinstance(node, ast.Call) and getattr(node.func, "id", "") in FIELD_CALLS:
                field_flags += 1
            elif isinstance(node, ast.ClassDef):
                if _is_dataclass(node) and node.name.endswith(CONFIG_SUFFIXES):
                    count = sum(isinstance(item, ast.AnnAssign) for item in node.body)
                    fields += count
                    configs.append(f"{node.name} {count}")
                if (family := _model_family(node.name)) is not None:
                    families[family].append(node.name)
            elif isinstance(node, ast.Constant) and (type(node.value), node.value) in {(type(v), v) for v in DEFAULTS}:
                defaults[node.value].append(f"{where}:{node.lineno}")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                for value in DEFAULTS:  # help text that states the default ("Default: ... 144.")
                    if re.search(rf"(?<![\w.]){re.escape(str(value))}(?![\w]|\.\d)", node.value):
                        in_text[value].append(f"{where}:{node.lineno}")
        if _names_backend(tree):
            backend_files.append(where)
    lines = [
        f"flag declarations: {options} typer.Option/Argument calls + {field_flags} config fields' flag()/argument(); "
        f"option dataclass fields: {fields} in {len(configs)} "
        f"({', '.join(configs)})"
    ]
    for value, places in defaults.items():
        lines.append(f"{value} written as a literal in {len(places)} places: {' '.join(places)}")
        lines.append(f"  and in {len(in_text[value])} strings (help text, docstrings): {' '.join(in_text[value])}")
    for family, names in families.items():
        lines.append(f"{family} classes: {len(names)} ({', '.join(sorted(names))})")
    lines.append(f"files naming the OpenVINO backend: {len(backend_files)} ({' '.join(backend_files)})")
    return lines


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
    for path in python_files(root, FLAG_DIRS):
        flags.update(declared_flags(ast.parse(path.read_text(), str(path))))
    sizes.sort(reverse=True)
    lines = [f"largest functions (of {len(sizes)}):"]
    lines += [f"  {length:4d} lines  {name}  ({where})" for length, name, where in sizes[:top]]
    lines.append(f"imports inside functions: {imports} ({own} of simlm's own modules, {imports - own} third-party)")
    counts = list(flags.values()) or [0]
    repeated = {flag: n for flag, n in flags.items() if n > 1}
    lines.append(
        f"options declared per flag (simlm_cli/commands, simlm_cli/options): {len(flags)} flags, max {max(counts)}, "
        f"mean {statistics.mean(counts):.2f}, {len(repeated)} declared more than once"
    )
    lines += [f"  {n}x {flag}" for flag, n in sorted(repeated.items(), key=lambda item: (-item[1], item[0]))]
    return lines + issue27(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=".", type=Path, help="The checkout (default: here).")
    parser.add_argument("--top", type=int, default=5, help="How many of the largest functions to list.")
    args = parser.parse_args()
    print("\n".join(report(args.root, args.top)))


if __name__ == "__main__":
    main()
