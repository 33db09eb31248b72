"""Gather a recipe's `simlm evaluate --json` outputs into results.json, results.md and a bar plot (results.png).

    python recipes/report.py --output DIR --title TITLE "BM25=DIR/bm25.json" "Retriever1=DIR/r1.json" ...

Each STAGE=FILE pair is one row, in the order given; a `FILE.time` beside FILE (seconds, written by the recipe)
adds the stage's wall time. Every number comes from the JSON files: nothing here computes or fills a metric.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path

METRICS = ("ndcg@10", "mrr@10", "recall@100", "recall@1000")


def read_rows(pairs: list[str]) -> list[dict]:
    rows = []
    for pair in pairs:
        stage, sep, path = pair.partition("=")
        if not sep or not stage:
            sys.exit(f"report.py: {pair!r}: expected STAGE=FILE")
        try:
            metrics = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            sys.exit(f"report.py: {path}: {err}")
        row = {"stage": stage, **{m: metrics.get(m) for m in METRICS}}
        timing = Path(path + ".time")
        if timing.is_file():
            row["seconds"] = float(timing.read_text().strip())
        rows.append(row)
    return rows


def markdown(rows: list[dict], title: str) -> str:
    lines = [f"# {title}", "", "| stage | " + " | ".join(METRICS) + " | time |", "|---" * (len(METRICS) + 2) + "|"]
    for row in rows:
        cells = [f"{row[m]:.4f}" if isinstance(row[m], int | float) else "-" for m in METRICS]
        seconds = row.get("seconds")
        cells.append(f"{seconds / 60:.1f} min" if seconds is not None else "-")
        lines.append(f"| {row['stage']} | " + " | ".join(cells) + " |")
    total = sum(r.get("seconds", 0.0) for r in rows)
    if total:
        lines += ["", f"Total stage time: {total / 60:.1f} min."]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(rows) + 2), 4.5))
    width = 0.8 / len(METRICS)
    for i, metric in enumerate(METRICS):
        values = [row[metric] if isinstance(row[metric], int | float) else math.nan for row in rows]
        xs = [j + (i - (len(METRICS) - 1) / 2) * width for j in range(len(rows))]
        bars = ax.bar(xs, values, width, label=metric)
        if metric == "ndcg@10":
            ax.bar_label(bars, fmt="%.3f", fontsize=7, rotation=90, padding=2)
    ax.set_xticks(range(len(rows)), [row["stage"] for row in rows], rotation=20, ha="right")
    ax.set_ylim(0, 1.2)  # headroom for the legend above the bars, clear of the slanted stage names
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=len(METRICS), loc="upper center")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def write_atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--title", default="SciFact test")
    parser.add_argument("pairs", nargs="+", metavar="STAGE=FILE")
    args = parser.parse_args()
    rows = read_rows(args.pairs)
    args.output.mkdir(parents=True, exist_ok=True)
    results = {"title": args.title, "metrics": list(METRICS), "rows": rows}
    write_atomic(args.output / "results.json", lambda p: p.write_text(json.dumps(results, indent=2) + "\n"))
    write_atomic(args.output / "results.md", lambda p: p.write_text(markdown(rows, args.title)))
    write_atomic(args.output / "results.png", lambda p: plot(rows, args.title, p))
    print(markdown(rows, args.title), file=sys.stderr)


if __name__ == "__main__":
    main()
