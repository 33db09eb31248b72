"""`--backend` through the real CLI: encode | index | search on OpenVINO and on PyTorch, what the stream and the
index record, the warning when the queries' backend or precision is not the passages', and indexes from before the
backend was recorded."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ALIKE = "encodes them alike"


def ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, f"{done.args} exited {done.returncode}:\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr, done.stderr
    return done


def without(index: Path, copy: Path, *fields: str) -> Path:
    """A copy of `index` whose meta.json lacks `fields`, as indexes written before they were recorded."""
    shutil.copytree(index, copy)
    meta = json.loads((copy / "meta.json").read_text())
    (copy / "meta.json").write_text(json.dumps({k: v for k, v in meta.items() if k not in fields}))
    return copy


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_bert_dir, tiny_data, cli_jobs) -> SimpleNamespace:
    work = tmp_path_factory.mktemp("backends")
    encode = ["encode", "--model", tiny_bert_dir, "--corpus", tiny_data.corpus, "--precision", "fp32"]
    jobs = {
        "openvino": cli_jobs.pipe([*encode, "--backend", "openvino"], ["index", "--output", work / "idx-ov"]),
        "torch": cli_jobs.pipe([*encode, "--backend", "torch"], ["index", "--output", work / "idx-torch"]),
    }
    file = cli_jobs.run([*encode, "--backend", "openvino", "--output", work / "ov.emb"])
    bad = cli_jobs.run([*encode, "--backend", "onnx", "--output", work / "x.emb"])
    done = {}
    for name, job in jobs.items():
        done[f"encode-{name}"], done[f"index-{name}"] = job.result()
        ok(done[f"encode-{name}"]), ok(done[f"index-{name}"])
    done["file"], done["bad"] = file.result(), bad.result()
    old = without(work / "idx-torch", work / "idx-old", "precision", "backend")
    no_backend = without(work / "idx-torch", work / "idx-no-backend", "backend")
    judged = ["--queries", tiny_data.queries, "--qrels", tiny_data.qrels]
    searches = {
        "ov-ov": ["search", "--index", work / "idx-ov", *judged, "--backend", "openvino"],
        "ov-torch": ["search", "--index", work / "idx-ov", *judged, "--backend", "torch"],
        "torch-torch": ["search", "--index", work / "idx-torch", *judged, "--backend", "torch"],
        "old-ov": ["search", "--index", old, *judged, "--backend", "openvino"],
        "no-backend-ov": ["search", "--index", no_backend, *judged, "--backend", "openvino"],
    }
    started = {name: cli_jobs.run(args) for name, args in searches.items()}
    done |= {name: ok(job.result()) for name, job in started.items()}
    return SimpleNamespace(work=work, done=done)


def scores(done: subprocess.CompletedProcess) -> dict[tuple[str, str], float]:
    rows = (line.split() for line in done.stdout.decode().splitlines())
    return {(qid, docid): float(score) for qid, _, docid, _, score, _ in rows}


def test_the_stream_and_the_index_record_the_backend(runs, read_stream) -> None:
    assert any(line.endswith("cpu, fp32, openvino") for line in runs.done["encode-openvino"].stderr.splitlines())
    for name in ("ov", "torch"):
        meta = json.loads((runs.work / f"idx-{name}" / "meta.json").read_text())
        assert (meta["precision"], meta["backend"]) == ("fp32", "openvino" if name == "ov" else "torch")
    header, ids, vectors = read_stream(Path(runs.work / "ov.emb"))
    assert (header.precision, header.backend, len(ids)) == ("fp32", "openvino", 12)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_openvino_search_ranks_as_pytorch_does(runs) -> None:
    """fp32 on both backends: the same documents with the same scores (to OpenVINO's rounding)."""
    ov, reference = scores(runs.done["ov-ov"]), scores(runs.done["torch-torch"])
    assert ov.keys() == reference.keys()
    assert max(abs(ov[key] - reference[key]) for key in ov) <= 1e-4


def test_search_says_both_and_warns_when_they_differ(runs) -> None:
    same = runs.done["ov-ov"].stderr
    assert "cpu, fp32, openvino (the index's passages: fp32, openvino)" in same and ALIKE not in same
    other = runs.done["ov-torch"].stderr
    assert "cpu, fp32, torch (the index's passages: fp32, openvino)" in other
    assert "the queries are encoded at cpu, fp32, torch, the index's passages at fp32, openvino: --backend openvino " \
           f"{ALIKE}" in other  # fmt: skip


def test_indexes_from_before_the_backend_was_recorded_still_search(runs) -> None:
    old = runs.done["old-ov"].stderr
    assert "cpu, fp32, openvino (the index's passages: unrecorded)" in old and ALIKE not in old
    no_backend = runs.done["no-backend-ov"].stderr
    assert "(the index's passages: fp32)" in no_backend and ALIKE not in no_backend  # compared on precision only
    old_scores, reference = scores(runs.done["old-ov"]), scores(runs.done["torch-torch"])
    assert old_scores.keys() == reference.keys()
    assert max(abs(old_scores[key] - reference[key]) for key in reference) <= 1e-4


def test_an_unknown_backend_is_refused(runs) -> None:
    bad = runs.done["bad"]
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "'onnx' is not one of" in bad.stderr and "--backend" in bad.stderr, bad.stderr
    assert not (runs.work / "x.emb").exists()
