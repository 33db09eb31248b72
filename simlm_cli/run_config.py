"""The resolved options of a training run, written into its output directory so that
`simlm COMMAND --config DIR/simlm-config.json` repeats it (an index records them in its meta.json instead). Built by
`simlm_cli.commands.config`; written here, where the trainer can reach it without importing the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from simlm_cli.io.files import atomic_output

RUN_CONFIG_FILE = "simlm-config.json"


def write_run_config(directory: str | Path, record: dict[str, Any]) -> Path:
    """`record` as DIRECTORY/simlm-config.json, through a temporary file renamed over it."""
    path = Path(directory) / RUN_CONFIG_FILE
    with atomic_output(path) as handle:
        handle.write(json.dumps(record, indent=1) + "\n")
    return path
