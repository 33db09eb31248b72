"""Split a qrels file's queries into a fit part and a held-out dev part, deterministically (by a hash of the query
id, so the split does not depend on file order or on the machine):

    python recipes/split_qrels.py QRELS --dev-fraction 0.25 --fit FIT.tsv --dev DEV.tsv

Both outputs keep the input's lines verbatim (a BEIR header line is copied to both). Recipes train on the fit part
and choose what has to be chosen (here: the re-ranker's interpolation weight) on the dev part, which the model being
judged never saw.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path


def is_header(line: str) -> bool:
    cols = line.split()
    return len(cols) >= 3 and not cols[-1].lstrip("-").isdigit()


def main() -> int:
    parser = argparse.ArgumentParser(description="Split qrels by query into fit and dev parts.")
    parser.add_argument("qrels")
    parser.add_argument("--dev-fraction", type=float, default=0.25)
    parser.add_argument("--fit", required=True)
    parser.add_argument("--dev", required=True)
    args = parser.parse_args()
    if not 0 < args.dev_fraction < 1:
        sys.exit("split_qrels.py: --dev-fraction must be between 0 and 1")
    lines = Path(args.qrels).read_text(encoding="utf-8-sig").splitlines(keepends=True)
    header = [lines.pop(0)] if lines and is_header(lines[0]) else []
    qids = sorted({line.split()[0] for line in lines if line.strip()})
    ranked = sorted(qids, key=lambda q: hashlib.blake2b(q.encode("utf-8"), digest_size=8).digest())
    dev = set(ranked[: max(1, round(len(ranked) * args.dev_fraction))])
    if len(dev) == len(qids):
        sys.exit(f"split_qrels.py: {args.qrels}: too few queries ({len(qids)}) to hold some out")
    for path, keep in ((args.fit, False), (args.dev, True)):
        body = [line for line in lines if line.strip() and (line.split()[0] in dev) == keep]
        Path(path).write_text("".join(header + body), encoding="utf-8")
    print(f"split_qrels.py: {len(qids) - len(dev)} fit / {len(dev)} dev queries", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
