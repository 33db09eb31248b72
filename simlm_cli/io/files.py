"""Line-level file access shared by every reader, and atomic writes for every output."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import shutil
import stat
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

from simlm_cli.errors import InputError, SimlmError, first_line


def open_binary(path: str | Path) -> IO[bytes]:
    """Open a file for reading bytes, decompressing `.gz` transparently; `-` is stdin."""
    path = str(path)
    if path == "-":
        return sys.stdin.buffer
    if not os.path.exists(path):
        raise InputError(path, "no such file")
    if os.path.isdir(path):
        raise InputError(path, "is a directory, expected a file")
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


# What a truncated or corrupt .gz raises while reading.
_READ_ERRORS = (OSError, EOFError, zlib.error)


BOM = "\ufeff"


def is_read_once(path: str | Path) -> bool:
    """stdin (`-`), a pipe, a FIFO or a process substitution (`<(zcat x.gz)`, /dev/fd/N, /dev/stdin on a pipe):
    bytes that can be read once only, so a second open would find them gone (or wait forever for a writer)."""
    if str(path) == "-":
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


class _ReadOnce:
    """One read-once input, opened once for the whole process: the lines a format-detecting peek read are
    replayed to the reader that follows."""

    def __init__(self, path: str):
        self.handle = sys.stdin.buffer if path == "-" else open_binary(path)
        self.peeked: list[bytes] = []

    def lines(self, peek: bool) -> Iterator[bytes]:
        replay = list(self.peeked)
        if not peek:
            self.peeked.clear()
        yield from replay
        for raw in self.handle:
            if peek:
                self.peeked.append(raw)
            yield raw


_read_once: dict[str, _ReadOnce] = {}


def _once(path: str | Path) -> _ReadOnce:
    key = str(path)
    entry = _read_once.get(key)
    if entry is None or (key == "-" and entry.handle is not sys.stdin.buffer):  # stdin replaced (tests)
        entry = _read_once[key] = _ReadOnce(key)
    return entry


def iter_lines(path: str | Path, peek: bool = False) -> Iterator[tuple[int, str]]:
    """Yield (line number, text without line ending) for each line, checking UTF-8 line by line. A leading
    UTF-8 byte-order mark (Windows editors write one) is dropped, so it never becomes part of an id.

    `peek`: the caller reads only a few lines (format detection); from a read-once input they are kept for the next
    reader.
    """
    handle = None if is_read_once(path) else open_binary(path)
    raw_lines = _once(path).lines(peek) if handle is None else handle
    try:
        for lineno, raw in enumerate(raw_lines, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InputError(path, f"invalid UTF-8 at byte {err.start} of the line", line=lineno) from None
            if lineno == 1:
                text = text.removeprefix(BOM)
            yield lineno, text.rstrip("\r\n")
    except _READ_ERRORS as err:
        raise InputError(path, f"cannot read: {err or type(err).__name__}") from None
    finally:
        if handle is not None:
            handle.close()


def first_content_line(path: str | Path) -> tuple[int, str] | None:
    """(line number, text) of the first non-blank line (for format detection), or None for an empty file."""
    for lineno, text in iter_lines(path, peek=True):
        if text.strip():
            return lineno, text
    return None


def count_lines(path: str | Path) -> int:
    """Count lines cheaply (for progress totals); a stream we cannot rewind counts as 0."""
    if is_read_once(path):
        return 0
    count = 0
    try:
        with open_binary(path) as handle:
            while chunk := handle.read(1 << 20):
                count += chunk.count(b"\n")
    except _READ_ERRORS as err:
        raise InputError(path, f"cannot read: {err or type(err).__name__}") from None
    return count


def is_stdout(path: str | Path | None) -> bool:
    """Whether an output option means stdout: not given, or exactly `-` (`./-` is a file named `-`)."""
    return path is None or str(path) == "-"


InputPaths = Iterable["str | Path | None"]


def _existing(paths: InputPaths) -> list[Path]:
    """The inputs that are files or directories on disk: stdin (`-`), pipes and FIFOs are read, never replaced,
    and a hub model name or a missing file is not on disk at all."""
    return [Path(p) for p in paths if p is not None and str(p) != "-" and os.path.exists(p) and not is_read_once(p)]


def _inside(path: Path, directory: Path) -> bool:
    """`path` is `directory` or lies under it, after resolving symbolic links on both."""
    path, directory = Path(os.path.realpath(path)), Path(os.path.realpath(directory))
    return path == directory or directory in path.parents


def _same_file(a: Path, b: Path) -> bool:
    """The same file on disk (st_dev, st_ino): through a symbolic link or a hard link too."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_not_an_input(output: str | Path | None, inputs: InputPaths, directory: bool = False) -> None:
    """Before any work: an output must never replace an input, whatever names them (one typo would destroy the
    user's corpus, queries, qrels or run). Refused: the output is an input file (also through a symbolic or
    hard link); an output directory (replaced whole) holds an input; an existing output lies inside an input
    directory (an index, a model), which writing it would change. None, `-` and FIFOs are streams, not files."""
    if output is None or str(output) == "-" or is_read_once(output):
        return
    output = Path(output)
    for source in _existing(inputs):
        if _same_file(output, source) or (directory and _inside(source, output)):
            what = "is" if _same_file(output, source) else "holds"
            raise SimlmError(
                f"{output}: {what} the input {source}; refusing to write an output over an input - pick another "
                "output path"
            )
        if source.is_dir() and output.exists() and _inside(output, source):
            raise SimlmError(
                f"{output}: lies inside the input directory {source}; refusing to replace it - pick another output path"
            )


def check_output_file(path: str | Path | None, inputs: InputPaths = ()) -> None:
    """Before any work: an output file's place must be writable, so a long search or encode does not fail at its
    end (and the error names the user's path, not the temporary one), and it must not be one of `inputs`
    (`check_not_an_input`). None or `-` is stdout."""
    if is_stdout(path):
        return
    check_not_an_input(path, inputs)
    path = Path(path)
    if path.is_dir():
        raise SimlmError(f"{path}: is a directory; --output names a file")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise SimlmError(f"{path}: cannot be created, {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise SimlmError(f"{path}: cannot be written, {ancestor} is not writable")


def _temporary_sibling(path: Path) -> Path:
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:  # name the output the user asked for, not our temporary name
        raise OSError(err.errno, err.strerror, str(path)) from None
    os.close(fd)
    return Path(name)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish_mode(path: Path, directory: bool) -> None:
    """mkstemp/mkdtemp create owner-only entries; give the output the mode a plain open/mkdir would."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_output(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Write to a temporary file beside `path`, renamed over it only if the block succeeds.

    A crash or a user error half-way leaves no partial file behind and keeps any earlier file intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(path)
    try:
        encoding = None if "b" in mode else "utf-8"
        if path.name.endswith(".gz"):
            # mtime=0: the same content gives the same bytes. Text mode goes through a TextIOWrapper.
            with gzip.GzipFile(tmp, "wb", mtime=0) as raw:
                yield raw if "b" in mode else io.TextIOWrapper(raw, encoding="utf-8", write_through=True)
        else:
            with open(tmp, mode, encoding=encoding) as handle:
                yield handle
        _publish_mode(tmp, directory=False)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_replaceable(path: str | Path, marker: str, owned: Callable[[Path], bool] | None = None) -> None:
    """Refuse to overwrite a directory that this kind of output did not make: an existing `path` may be replaced
    only if it is empty or holds `marker` (e.g. an index's meta.json) and, when given, `owned(path)` says the
    marker is simlm's own (any JSON file named meta.json is not). Commands call this before any work."""
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise SimlmError(f"{path}: exists and is not a directory")
    if not any(path.iterdir()):
        return
    if not (path / marker).is_file():
        reason = f"no {marker}"
    elif owned is not None and not owned(path):
        reason = f"its {marker} is not simlm's"
    else:
        return
    raise SimlmError(
        f"{path}: exists and is not one simlm wrote ({reason}); refusing to replace it - remove it or pick "
        "another --output"
    )


@contextlib.contextmanager
def atomic_directory(
    path: str | Path, marker: str | None = None, owned: Callable[[Path], bool] | None = None
) -> Iterator[Path]:
    """Build a directory under a temporary name; it replaces `path` only when the block succeeds.

    With `marker`, an existing `path` is replaced only if it is empty or holds that file (`check_replaceable`).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SimlmError(f"{path}: exists and is not a directory")
    if marker is not None:
        check_replaceable(path, marker, owned)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        _publish_mode(tmp, directory=True)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / "x")
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def model_write(target: str | Path, what: str) -> Iterator[None]:
    """torch.save and safetensors report a short write (a full disk, a quota) in their own words, torch's as
    "unexpected pos 133144320 vs 133144212" (a RuntimeError), safetensors' as a SafetensorError: one line naming
    `what` was being written to `target` and the space left on its disk. OSError (the CLI prints it as one line)
    and simlm's own errors pass unchanged."""
    try:
        yield
    except (OSError, SimlmError):
        raise
    except Exception as err:
        target = Path(target)
        existing = next((p for p in (target, *target.parents) if p.exists()), Path("."))
        free = shutil.disk_usage(existing).free / 2**20
        raise SimlmError(
            f"{target}: cannot write {what} ({type(err).__name__}: {first_line(err)[:200]}); {free:,.0f} MiB free on "
            "its disk"
        ) from None
