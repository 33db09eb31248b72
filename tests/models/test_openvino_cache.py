"""The OpenVINO model cache verifies what it loads (issue 21, item 3), for the int8 models and the float ones alike
(one cache, `simlm_cli/backends/openvino.py`): every file of an entry has its sha256 recorded in <kind>.json at build
time and checked on each load; a damaged entry is rebuilt with one line saying so, never used."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from simlm_cli.backends import openvino
from simlm_cli.device import Backend, Precision, Runtime
from simlm_cli.models.biencoder import BiEncoder
from simlm_cli.models.settings import resolve_settings

RUNTIMES = {"int8": Runtime("cpu", Precision.int8), "openvino": Runtime("cpu", Precision.fp32, Backend.openvino)}
QUERY = ["how do proteins fold"]


def _vectors(model: Path, kind: str) -> np.ndarray:
    return BiEncoder.load(resolve_settings(str(model)), RUNTIMES[kind]).encode_queries(QUERY)


@pytest.fixture(scope="module", params=list(RUNTIMES))
def built(request, tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> tuple[Path, np.ndarray, str]:
    """A cache holding the tiny BERT's entry of one kind (int8, float), and the vectors of that fresh build."""
    cache = tmp_path_factory.mktemp(f"{request.param}-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SIMLM_CACHE_DIR", str(cache))
        return cache, _vectors(tiny_bert_dir, request.param), request.param


def _entry(cache: Path) -> Path:
    (kind,) = cache.iterdir()
    (entry,) = kind.iterdir()
    return entry


def _record(entry: Path) -> Path:
    return entry / openvino.info_file(entry.parent.name)


def _flip_bytes(entry: Path) -> None:
    """64 bytes flipped per 256 KiB of model.bin, the size kept (the probe's tampering)."""
    path = entry / "model.bin"
    data = bytearray(path.read_bytes())
    for start in range(0, len(data), 256 * 1024):
        for i in range(start + 1024, min(start + 1024 + 64, len(data))):
            data[i] ^= 0x5A
    path.write_bytes(bytes(data))


def _truncate_xml(entry: Path) -> None:
    path = entry / openvino.MODEL_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGES: dict[str, Callable[[Path], None]] = {
    "flipped-bytes": _flip_bytes,
    "truncated-model-xml": _truncate_xml,
    "empty-record": lambda entry: _record(entry).write_text(""),
    "missing-record": lambda entry: _record(entry).unlink(),
    "record-not-an-object": lambda entry: _record(entry).write_text("[1, 2]"),
    "missing-model-bin": lambda entry: (entry / "model.bin").unlink(),
    "no-digests-recorded": lambda entry: _record(entry).write_text(
        json.dumps({k: v for k, v in json.loads(_record(entry).read_text()).items() if k != "files"})
    ),
}


def test_an_entry_records_the_sha256_of_each_file(built) -> None:
    cache, _, _ = built
    entry = _entry(cache)
    files = json.loads(_record(entry).read_text())["files"]
    assert sorted(files) == ["model.bin", openvino.MODEL_FILE]
    assert all(files[name] == openvino.file_digest(entry / name) for name in files)


@pytest.mark.parametrize("damage", list(DAMAGES), ids=list(DAMAGES))
def test_a_damaged_entry_is_rebuilt_never_used(
    damage: str, built, tiny_bert_dir: Path, tmp_path: Path, monkeypatch, capfd
) -> None:
    cache, fresh, kind = built
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    monkeypatch.setenv("SIMLM_CACHE_DIR", str(copy))
    entry = _entry(copy)
    DAMAGES[damage](entry)
    capfd.readouterr()
    vectors = _vectors(tiny_bert_dir, kind)
    err = capfd.readouterr().err
    np.testing.assert_array_equal(vectors, fresh)  # as a fresh build gives, not the tampered model's
    assert f"the cached model in {entry} is damaged" in err and "rebuilding it" in err, err
    assert "Traceback" not in err
    assert openvino.damage(entry, kind)[1] is None  # the rebuilt entry verifies
    assert sorted(p.name for p in (copy / kind).iterdir()) == [entry.name]  # nothing left beside it


def test_a_damaged_entry_that_cannot_be_removed_is_refused(built, tiny_bert_dir: Path, tmp_path, monkeypatch) -> None:
    from simlm_cli.errors import SimlmError

    cache, _, kind = built
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    monkeypatch.setenv("SIMLM_CACHE_DIR", str(copy))
    _flip_bytes(_entry(copy))

    def cannot(entry: Path) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(openvino, "_discard", cannot)
    with pytest.raises(
        SimlmError, match=rf"damaged {kind} cache entry \(model.bin does not match its recorded sha256\)"
    ):
        _vectors(tiny_bert_dir, kind)
