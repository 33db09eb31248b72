"""Gather a recipe's `simlm evaluate --json` outputs into results.json, results.md and a bar plot (results.png).

    python recipes/report.py --output DIR --title TITLE [--note TEXT] "BM25=DIR/bm25.json" "Retriever1=DIR/r1.json" ...

Each STAGE=FILE pair is one run of a stage; pairs with the same STAGE are its seeds, shown as mean +- sd (the sample
standard deviation). Beside FILE (NAME.json), the recipe may have written:
  - FILE.time: the stage's wall time in seconds;
  - NAME.stage.json: its choice on dev (`recipes/dev_choice.py keep`: the dev figure, the input's, kept or not, ...);
  - NAME.compare.json: `simlm evaluate --run INPUT --run FILE --baseline INPUT --json`, whose "comparisons" (when that
    command compares runs) give the paired difference on test against the stage's input, its 95% interval and p.
Every number comes from those files: nothing here computes or fills a metric, beyond means and sds over seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
from pathlib import Path

METRICS = ("ndcg@10", "mrr@10", "recall@100", "recall@1000")


def read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        sys.exit(f"report.py: {path}: {err}")
    if not isinstance(value, dict):
        sys.exit(f"report.py: {path}: not a JSON object")
    return value


def sibling(path: str, suffix: str) -> Path:
    """NAME.json -> NAME{suffix} (NAME.stage.json, NAME.compare.json)."""
    return Path(path.removesuffix(".json") + suffix)


def read_run(path: str) -> dict:
    """One seed of one stage: its test metrics, time, dev choice and comparison, as far as they were written."""
    metrics = read_json(Path(path))
    run = {m: metrics.get(m) for m in METRICS}
    timing = Path(path + ".time")
    if timing.is_file():
        run["seconds"] = float(timing.read_text().strip())
    stage = sibling(path, ".stage.json")
    run["choice"] = read_json(stage) if stage.is_file() else None
    compared = sibling(path, ".compare.json")
    comparisons = read_json(compared).get("comparisons") if compared.is_file() else None
    run["comparison"] = comparisons[0] if isinstance(comparisons, list) and comparisons else None
    return run


def mean_sd(values: list) -> tuple[float | None, float | None]:
    numbers = [v for v in values if isinstance(v, int | float)]
    if not numbers:
        return None, None
    return statistics.fmean(numbers), (statistics.stdev(numbers) if len(numbers) > 1 else None)


def read_rows(pairs: list[str]) -> list[dict]:
    grouped: dict[str, list[dict]] = {}
    for pair in pairs:
        stage, sep, path = pair.partition("=")
        if not sep or not stage:
            sys.exit(f"report.py: {pair!r}: expected STAGE=FILE")
        grouped.setdefault(stage, []).append(read_run(path))
    return [summarise(stage, runs) for stage, runs in grouped.items()]


def summarise(stage: str, runs: list[dict]) -> dict:
    row: dict = {"stage": stage, "seeds": len(runs)}
    for metric in METRICS:
        row[metric], row[f"{metric}_sd"] = mean_sd([r[metric] for r in runs])
    seconds = [r["seconds"] for r in runs if "seconds" in r]
    if seconds:
        row["seconds"] = statistics.fmean(seconds)
    choices = [r["choice"] for r in runs if r["choice"]]
    row["dev"], row["dev_sd"] = mean_sd([c.get("dev") for c in choices])
    row["kept"] = sum(bool(c.get("kept")) for c in choices) if choices else None
    row["choices"] = choices
    row["comparisons"] = [r["comparison"] for r in runs if r["comparison"]]
    return row


def cell(value: float | None, sd: float | None = None) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:.4f}" + (f" ± {sd:.4f}" if sd is not None else "")


def comparison_cell(comparisons: list[dict]) -> str:
    """Each seed's paired difference on test against the stage's input: +d [lo, hi] p (randomization, Holm)."""
    parts = []
    for c in comparisons:
        lo, hi = c.get("ci95", [math.nan, math.nan])
        p = c.get("p_randomization_holm", c.get("p_randomization"))
        parts.append(f"{c['difference']:+.4f} [{lo:+.4f}, {hi:+.4f}] p={p:.3g}")
    return "; ".join(parts) if parts else "-"


def markdown(rows: list[dict], title: str, note: str = "") -> str:
    head = ["stage", *METRICS, "dev ndcg@10", "kept on dev", "vs input (test, paired)", "time"]
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for row in rows:
        cells = [cell(row[m], row[f"{m}_sd"]) for m in METRICS]
        cells.append(cell(row["dev"], row["dev_sd"]))
        finals = row["kept"] is not None and any("final" in c for c in row["choices"])  # named under the table
        cells.append(f"{row['kept']}/{len(row['choices'])}" if row["kept"] is not None and not finals else "-")
        cells.append(comparison_cell(row["comparisons"]))
        seconds = row.get("seconds")
        cells.append(f"{seconds / 60:.1f} min" if seconds is not None else "-")
        lines.append(f"| {row['stage']} | " + " | ".join(cells) + " |")
    finals = [c.get("final") for row in rows for c in row["choices"] if c.get("final")]
    if finals:
        lines += ["", "Final run (the best on dev among the stages kept), per seed: " + ", ".join(finals) + "."]
    if any(row["seeds"] > 1 for row in rows):
        lines += ["", "Mean ± sd over the seeds; the paired comparisons are one per seed."]
    if note:
        lines += ["", note]
    total = sum(r.get("seconds", 0.0) * r["seeds"] for r in rows)
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
    parser.add_argument("--note", default="", help="A line under the table (what the models trained on, ...).")
    parser.add_argument("pairs", nargs="+", metavar="STAGE=FILE")
    args = parser.parse_args()
    rows = read_rows(args.pairs)
    args.output.mkdir(parents=True, exist_ok=True)
    results = {"title": args.title, "note": args.note, "metrics": list(METRICS), "rows": rows}
    write_atomic(args.output / "results.json", lambda p: p.write_text(json.dumps(results, indent=2) + "\n"))
    write_atomic(args.output / "results.md", lambda p: p.write_text(markdown(rows, args.title, args.note)))
    write_atomic(args.output / "results.png", lambda p: plot(rows, args.title, p))
    print(markdown(rows, args.title, args.note), file=sys.stderr)


if __name__ == "__main__":
    main()
