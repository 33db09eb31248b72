"""The recipes' choices on the dev split, each from `simlm evaluate --json` files of dev runs:

    python recipes/dev_choice.py best FILE... --metric ndcg@10
        prints the FILE with the highest metric; a tie goes to the earliest, so list the simplest choice first
        (the earliest epoch, the stage's input)
    python recipes/dev_choice.py keep CANDIDATE INPUT --record OUT.json --metric ndcg@10 [--field KEY=VALUE ...]
        prints "kept" when CANDIDATE beats INPUT on dev (strictly), else "dropped", and writes the decision with
        both figures to OUT.json (report.py shows it beside the stage's test figures)

Nothing here reads a test figure: the files named are the recipe's dev evaluations.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def figure(path: str, metric: str) -> float:
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))[metric]
    except (OSError, ValueError, KeyError, TypeError) as err:
        sys.exit(f"dev_choice.py: {path}: no {metric} ({type(err).__name__}: {err})")
    if not isinstance(value, int | float):
        sys.exit(f"dev_choice.py: {path}: {metric} is not a number")
    return float(value)


def best(paths: list[str], metric: str) -> str:
    values = [figure(p, metric) for p in paths]
    return paths[values.index(max(values))]  # index(): the earliest of equal figures


def keep(candidate: str, baseline: str, metric: str, record: Path, fields: list[str]) -> bool:
    kept = best([baseline, candidate], metric) == candidate and candidate != baseline
    decision = dict(field.partition("=")[::2] for field in fields) | {
        "metric": metric,
        "dev": figure(candidate, metric),
        "input_dev": figure(baseline, metric),
        "input_file": baseline,
        "kept": kept,
    }
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp = record.with_name(f".{record.name}.tmp")
    tmp.write_text(json.dumps(decision) + "\n", encoding="utf-8")
    tmp.replace(record)
    return kept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    pick = sub.add_parser("best")
    pick.add_argument("files", nargs="+")
    pick.add_argument("--metric", required=True)
    decide = sub.add_parser("keep")
    decide.add_argument("candidate")
    decide.add_argument("input")
    decide.add_argument("--record", required=True, type=Path)
    decide.add_argument("--metric", required=True)
    decide.add_argument("--field", action="append", default=[], metavar="KEY=VALUE", help="Also recorded.")
    args = parser.parse_args()
    if args.command == "best":
        print(best(args.files, args.metric))
    else:
        print("kept" if keep(args.candidate, args.input, args.metric, args.record, args.field) else "dropped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
