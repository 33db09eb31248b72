"""Plot several training logs' loss curves in one figure (e.g. every objective of recipes/pretrain_ablation.sh).

    python recipes/plot_losses.py --output losses.png DIR_A/train_log.jsonl DIR_B/train_log.jsonl ...

Each curve is labelled by its log's directory name (a leading "pretrain-" dropped). Objectives' losses differ in
scale (rlm and rtd add a generator's loss, enc-dec-mlm adds a decoder's), so a second panel shows each curve
relative to its first logged loss.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path


def read_curve(path: Path) -> tuple[list[int], list[float]]:
    steps, losses = [], []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                steps.append(int(record["step"]))
                losses.append(float(record["loss"]))
            except (ValueError, KeyError, TypeError) as err:
                sys.exit(f"plot_losses.py: {path}:{number}: field 'step'/'loss': {err}")
    if not steps:
        sys.exit(f"plot_losses.py: {path}: no logged steps")
    return steps, losses


def label_of(path: Path) -> str:
    name = path.parent.name
    return name.removeprefix("pretrain-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--title", default="Pretraining loss")
    parser.add_argument("logs", nargs="+", type=Path)
    args = parser.parse_args()
    curves = {label_of(path): read_curve(path) for path in args.logs}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (absolute, relative) = plt.subplots(1, 2, figsize=(12, 4.5))
    for label, (steps, losses) in curves.items():
        absolute.plot(steps, losses, label=label)
        relative.plot(steps, [loss / losses[0] for loss in losses], label=label)
    absolute.set(xlabel="step", ylabel="loss", title=args.title)
    relative.set(xlabel="step", ylabel="loss / first logged loss", title="relative to each start")
    absolute.legend(fontsize=8)
    fig.tight_layout()
    # Written beside the target, then renamed: a failed plot never leaves half a PNG.
    handle, temporary = tempfile.mkstemp(dir=args.output.parent, suffix=".png")
    os.close(handle)
    try:
        fig.savefig(temporary)
        os.replace(temporary, args.output)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    print(f"plot_losses.py: wrote {args.output} ({len(curves)} curves)", file=sys.stderr)


if __name__ == "__main__":
    main()
