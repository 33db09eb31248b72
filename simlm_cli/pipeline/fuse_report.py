"""What `simlm fuse` shows and keeps of a tuning: the grid as a rich table and the JSON report beside the output."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from simlm_cli.pipeline.fuse_options import FuseMethod, Norm

if TYPE_CHECKING:
    from simlm_cli.pipeline.fuse import FuseConfig, TuneResult


def render_grid(result: TuneResult, names: Sequence[str], metric: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    from simlm_cli.console import console

    table = Table(title=f"{metric} on {result.queries} tuning queries")
    for number, name in enumerate(names, 1):
        table.add_column(escape(f"w{number} {Path(name).name}"), justify="right")
    table.add_column(escape(metric), justify="right")
    for weights, value in result.grid:
        best = weights == result.weights
        cells = [f"{w:.2f}" for w in weights] + [f"{value:.4f}"]
        table.add_row(*cells, style="bold green" if best else None)
    console.print(table)


def report_path(config: FuseConfig) -> str | None:
    if config.tune_report:
        return config.tune_report
    if config.tune_on and config.output:
        return f"{config.output}.fuse.json"
    return None


def write_report(path: str, config: FuseConfig, weights: Sequence[float], tuned: TuneResult | None) -> None:
    from simlm_cli.io.files import atomic_output

    report: dict = {
        "runs": list(config.runs),
        "method": config.method.value,
        "norm": (config.norm or Norm.minmax).value if config.method is FuseMethod.interpolate else None,
        "rrf_k": config.rrf_k if config.method is FuseMethod.rrf else None,
        "k": config.k,
        "depth": config.depth,
        "weights": list(weights),
    }
    if tuned is not None:
        report.update(
            tune_on=config.tune_on,
            tune_runs=list(config.tune_runs or config.runs),
            metric=config.metric,
            tuning_queries=tuned.queries,
            best=round(tuned.value, 6),
            grid=[{"weights": w, config.metric: round(v, 6)} for w, v in tuned.grid],
        )
    with atomic_output(path) as handle:
        handle.write(json.dumps(report, indent=2) + "\n")
