"""A training run's output directory, and the proof that simlm made it.

When a trainer (pretrain, train, distill, rerank train) starts writing into `--output` it writes `.simlm-run.json`:
its own record (tool, version, command, created) and every entry of the directory the run wrote. Only that
marker makes a directory simlm's; a `checkpoints/` folder or a `train_log.jsonl` proves nothing (a user's project
may hold either). Re-running into a non-empty output needs --resume (continue) or --overwrite (replace), and
--overwrite removes only the entries the marker lists, never a file the user put there.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from simlm_cli.errors import InputError, SimlmError
from simlm_cli.io.files import atomic_output, check_not_an_input
from simlm_cli.io.json_input import read_json
from simlm_cli.training.train_log import LOG_FILE

RUN_MARKER = ".simlm-run.json"
CHECKPOINTS = "checkpoints"
EPOCHS = "epochs"  # --save-epochs: epochs/epoch-N, each epoch's whole model
_TOOL = "simlm"
# What a run writes from its first step on; the model's own files are added when it writes them at its end.
_WRITTEN_FROM_THE_START = [LOG_FILE, CHECKPOINTS]


def _entry_name(name: Any) -> bool:
    """A marker may name only entries directly inside the directory: a tampered one naming `../x` or `/x` must
    never make --overwrite remove anything outside it."""
    return isinstance(name, str) and name not in ("", ".", "..", RUN_MARKER) and Path(name).name == name


def read_marker(output: Path) -> dict[str, Any] | None:
    """The directory's marker when it is a valid one simlm wrote, else None (absent, unreadable, not ours)."""
    try:
        record = read_json(output / RUN_MARKER)
    except (OSError, ValueError, InputError):  # InputError: nested too deep
        return None
    if not isinstance(record, dict) or record.get("tool") != _TOOL:
        return None
    written = record.get("written")
    if not isinstance(written, list) or not all(_entry_name(name) for name in written):
        return None
    return record


def check_train_output(
    output: str | Path, resume: bool = False, overwrite: bool = False, inputs: Iterable[str | Path | None] = ()
) -> None:
    """Before any work: `--output` may be new, empty, or a directory whose marker says simlm made it; a non-empty
    one of simlm's needs --resume or --overwrite, and one without the marker is refused, even with --overwrite
    (a run would replace config.json and README.md in it). No input may lie inside it."""
    output = Path(output)
    if resume and overwrite:
        raise SimlmError("--resume and --overwrite exclude each other: continue the earlier run, or replace it")
    check_not_an_input(output, inputs, directory=True)
    if not output.exists():
        return
    if not output.is_dir():
        raise SimlmError(f"--output {output}: exists and is not a directory")
    others = [entry for entry in output.iterdir() if entry.name != RUN_MARKER]
    if read_marker(output) is None:
        if not others and not (output / RUN_MARKER).exists():
            return
        raise SimlmError(
            f"--output {output}: exists and is not a directory a simlm training run created (no valid {RUN_MARKER}); "
            "refusing to write into it, even with --overwrite - remove it or pick another --output"
        )
    if others and not (resume or overwrite):
        raise SimlmError(
            f"--output {output}: holds an earlier simlm training run; pass --resume to continue it or --overwrite "
            "to replace it"
        )


def _write_marker(output: Path, record: dict[str, Any]) -> None:
    with atomic_output(output / RUN_MARKER) as handle:
        handle.write(json.dumps(record, indent=1) + "\n")


def _remove_entry(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def claim_output(output: Path, resume: bool, log: Callable[[str], None]) -> None:
    """Make `output` this run's (the main process, once `check_train_output` passed): a resumed run keeps the
    marker; otherwise what an earlier run recorded is removed (--overwrite) and a new marker written."""
    output.mkdir(parents=True, exist_ok=True)
    earlier = read_marker(output)
    if resume and earlier is not None:
        return
    if earlier is not None:
        removed = [name for name in earlier["written"] if (output / name).exists() or (output / name).is_symlink()]
        for name in removed:
            _remove_entry(output / name)
        if removed:
            log(f"--overwrite: removed the earlier run's {', '.join(removed)} from {output}")
    record = {
        "tool": _TOOL,
        "version": _version(),
        "command": ["simlm", *sys.argv[1:]],
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "written": list(_WRITTEN_FROM_THE_START),
    }
    _write_marker(output, record)


def record_written(output: Path, names: Iterable[str]) -> None:
    """Add entries the run is about to write to the marker (before they land: a crash then leaves nothing of
    simlm's unrecorded)."""
    record = read_marker(output)
    if record is None:  # the marker was removed or damaged during the run: the directory is no longer provably ours
        raise SimlmError(
            f"{output / RUN_MARKER}: removed or damaged during the run; not writing the model into {output}"
        )
    record["written"] = list(dict.fromkeys([*record["written"], *names]))
    _write_marker(output, record)


def _version() -> str:
    from simlm_cli import __version__

    return __version__
