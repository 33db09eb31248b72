"""The table of recipes/pretrain_ablation.sh, from the files that recipe wrote under OUT:

    python recipes/ablation_report.py --output OUT --rows "none mlm rlm" --seeds "42 43" [--title T]

For each row and seed: OUT/ROW-SEED.json (test, `simlm evaluate --json`) and .time, OUT/dev/ROW-SEED.json (dev),
OUT/zeroshot-ROW-SEED.json and OUT/dev/zeroshot-ROW-SEED.json (the row's start before fine-tuning, [CLS]; none's
start is one model for every seed: OUT/zeroshot-none.json), OUT/models/pretrain-ROW-SEED/train_log.jsonl (its
`replace_ratio` and last `loss`), and OUT/compare/vs-BASE-SEED.json (`simlm evaluate --run ... --baseline BASE-SEED
--json`: the paired difference on the test queries of each row against BASE, with the same seed). Writes
OUT/results.json and OUT/results.md. Every number comes from those files: nothing here computes a metric or a
comparison beyond means and sample sds over seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from report import cell, comparison_cell, mean_sd, read_json, write_atomic  # recipes/report.py

METRICS = ("ndcg@10", "mrr@10", "recall@100")
BASELINES = ("none", "mlm")


def train_log(path: Path) -> dict:
    """A pretraining's mean replaced ratio over its logged steps (rlm, rtd) and its last logged loss."""
    if not path.is_file():
        return {}
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    ratios = [r["replace_ratio"] for r in records if "replace_ratio" in r]
    losses = [r["loss"] for r in records if "loss" in r]
    return {"replaced": statistics.fmean(ratios) if ratios else None, "last_loss": losses[-1] if losses else None}


def comparison(out: Path, base: str, row: str, seed: str) -> dict | None:
    """The comparison of ROW-SEED's test run against BASE-SEED's (None where it was not run or is the baseline)."""
    path = out / "compare" / f"vs-{base}-{seed}.json"
    if row == base or not path.is_file():
        return None
    found = [c for c in read_json(path).get("comparisons", []) if Path(c["run"]).name == f"{row}-{seed}.trec"]
    if len(found) != 1:
        sys.exit(f"ablation_report.py: {path}: no single comparison of {row}-{seed}.trec")
    return found[0]


def read_seed(out: Path, row: str, seed: str) -> dict:
    test = read_json(out / f"{row}-{seed}.json")
    zero = f"zeroshot-{row}-{seed}" if row != "none" else "zeroshot-none"
    timing = out / f"{row}-{seed}.json.time"
    return {
        "seed": seed,
        "test": {m: test.get(m) for m in METRICS},
        "dev": read_json(out / "dev" / f"{row}-{seed}.json").get("ndcg@10"),
        "zeroshot": read_json(out / f"{zero}.json").get("ndcg@10"),
        "zeroshot_dev": read_json(out / "dev" / f"{zero}.json").get("ndcg@10"),
        "seconds": float(timing.read_text().strip()) if timing.is_file() else None,
        "pretraining": train_log(out / "models" / f"pretrain-{row}-{seed}" / "train_log.jsonl"),
        "vs": {base: comparison(out, base, row, seed) for base in BASELINES},
    }


def summarise(row: str, seeds: list[dict]) -> dict:
    summary: dict = {"row": row, "seeds": seeds}
    for metric in METRICS:
        summary[metric], summary[f"{metric}_sd"] = mean_sd([s["test"][metric] for s in seeds])
    summary["dev"], summary["dev_sd"] = mean_sd([s["dev"] for s in seeds])
    starts = seeds if row != "none" else seeds[:1]  # none's start is one model whatever the seed
    for key in ("zeroshot", "zeroshot_dev"):
        summary[key], summary[f"{key}_sd"] = mean_sd([s[key] for s in starts])
    summary["replaced"], _ = mean_sd([s["pretraining"].get("replaced") for s in seeds])
    summary["last_loss"], _ = mean_sd([s["pretraining"].get("last_loss") for s in seeds])
    return summary


def markdown(rows: list[dict], title: str, settings: dict, stages: dict) -> str:
    head = ["row", "seeds", "test nDCG@10", "test MRR@10", "test R@100", "dev nDCG@10", "zero-shot [CLS] test",
            "vs none (test, per seed)", "vs mlm (test, per seed)", "replaced", "last pretraining loss"]  # fmt: skip
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for row in rows:
        cells = [str(len(row["seeds"]))]
        cells += [cell(row[m], row[f"{m}_sd"]) for m in METRICS]
        cells += [cell(row["dev"], row["dev_sd"]), cell(row["zeroshot"], row["zeroshot_sd"])]
        for base in BASELINES:
            cells.append(comparison_cell([s["vs"][base] for s in row["seeds"] if s["vs"][base]]))
        cells += [cell(row["replaced"]), cell(row["last_loss"])]
        lines.append(f"| {row['row']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Mean ± sd (sample) over the seeds. Paired comparisons: each row's seed s against the baseline's seed s on "
        "every test query (difference of nDCG@10, 95% paired bootstrap interval, randomization p Holm-corrected over "
        "the rows of that seed), one per seed. Zero-shot: the row's start before fine-tuning ([CLS] vectors); none's "
        "is the initial encoder's. replaced: share of masked positions whose token rlm/rtd's generator changed.",
        "",
        f"Settings: `{json.dumps(settings)}`.",
    ]
    if stages:
        lines += ["", "Stage 0 (head fit) and 0b (generator), last logged loss: " + json.dumps(stages) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--rows", required=True)
    parser.add_argument("--seeds", required=True)
    parser.add_argument("--title", default="SciFact test: the pretraining ablation")
    args = parser.parse_args()
    out = args.output
    rows = [summarise(row, [read_seed(out, row, seed) for seed in args.seeds.split()]) for row in args.rows.split()]
    settings = read_json(out / "settings.json")
    stages = {name: train_log(out / "models" / name / "train_log.jsonl").get("last_loss")
              for name in ("head", "generator") if (out / "models" / name).is_dir()}  # fmt: skip
    results = {"title": args.title, "settings": settings, "stages_last_loss": stages, "rows": rows}
    write_atomic(out / "results.json", lambda p: p.write_text(json.dumps(results, indent=2) + "\n"))
    table = markdown(rows, args.title, settings, stages)
    write_atomic(out / "results.md", lambda p: p.write_text(table))
    print(table, file=sys.stderr)


if __name__ == "__main__":
    main()
