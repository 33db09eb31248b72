"""How a model's encoding settings are found: sentence-transformers directories, simlm.json, hub names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simlm_cli.errors import SimlmError
from simlm_cli.models import settings as settings_module
from simlm_cli.models.settings import resolve_settings


def st_directory(path: Path, modules: list[str], st_config: dict | None = None, tokenizer: dict | None = None) -> Path:
    """Only the configuration files sentence-transformers reads (settings never load weights)."""
    path.mkdir(parents=True)
    entries = [{"idx": i, "name": str(i), "path": "" if m == "Transformer" else f"{i}_{m}",
                "type": f"sentence_transformers.models.{m}"} for i, m in enumerate(modules)]  # fmt: skip
    (path / "modules.json").write_text(json.dumps(entries))
    for entry, module in zip(entries, modules):
        if module == "Pooling":
            (path / entry["path"]).mkdir()
            (path / entry["path"] / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    (path / "sentence_bert_config.json").write_text(json.dumps(st_config or {"max_seq_length": 200}))
    (path / "tokenizer_config.json").write_text(json.dumps(tokenizer or {}))
    return path


def test_a_plain_sentence_transformers_directory(tmp_path: Path) -> None:
    settings = resolve_settings(str(st_directory(tmp_path / "m", ["Transformer", "Pooling", "Normalize"])))
    assert (settings.pooling, settings.normalize, settings.passage_format) == ("cls", True, "concat")
    assert (settings.query_max_length, settings.passage_max_length) == (200, 200)


def test_modules_simlm_cannot_reproduce_are_an_error(tmp_path: Path) -> None:
    """A Dense projection (LaBSE, GTR ...) changes the vectors: refusing beats silently differing."""
    model = st_directory(tmp_path / "m", ["Transformer", "Pooling", "Dense", "Normalize"])
    with pytest.raises(SimlmError, match="module\\(s\\) Dense not supported"):
        resolve_settings(str(model))


def test_lower_casing_is_accepted_only_when_the_tokenizer_does_it(tmp_path: Path) -> None:
    modules = ["Transformer", "Pooling"]
    cased = st_directory(tmp_path / "cased", modules, {"do_lower_case": True}, {"do_lower_case": False})
    with pytest.raises(SimlmError, match="do_lower_case"):
        resolve_settings(str(cased))
    uncased = st_directory(tmp_path / "uncased", modules, {"do_lower_case": True}, {"do_lower_case": True})
    assert resolve_settings(str(uncased)).pooling == "cls"


def test_a_hub_name_reads_the_settings_files_the_hub_has(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--model org/name` of a sentence-transformers model encodes as that model does, not with the paper's
    defaults (the hub is replaced here by a local directory: nothing is downloaded in tests)."""
    fetched = st_directory(tmp_path / "snapshot", ["Transformer", "Pooling"], {"max_seq_length": 64})
    asked = []

    def fake_snapshot_download(repo_id: str, allow_patterns: list[str]) -> str:
        asked.append((repo_id, allow_patterns))
        return str(fetched)

    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_snapshot_download)
    settings = resolve_settings("someone/some-st-model")
    assert asked == [("someone/some-st-model", settings_module.SETTINGS_FILES)]
    assert settings.model == "someone/some-st-model"  # the name is what indexes record
    assert (settings.pooling, settings.normalize, settings.passage_max_length) == ("cls", False, 64)


def test_an_unreachable_hub_leaves_the_paper_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(**_: object) -> str:
        raise OSError("offline")

    monkeypatch.setattr("huggingface_hub.snapshot_download", offline)
    settings = resolve_settings("bert-base-uncased")
    assert (settings.pooling, settings.passage_format, settings.passage_max_length) == ("cls", "pair", 144)
    assert settings.source == "paper defaults"


def _damage(model: Path, name: str, content) -> Path:
    (model / name).write_text(json.dumps(content))
    return model


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("modules.json", {"0": "Transformer"}, "modules.json: corrupt model configuration: expected a list"),
        ("modules.json", ["Transformer"], "modules.json: corrupt model configuration: expected objects"),
        ("modules.json", [{"type": 5}], "modules.json: corrupt model configuration: expected objects"),
        ("sentence_bert_config.json", [1], "sentence_bert_config.json: corrupt model configuration"),
        ("sentence_bert_config.json", {"max_seq_length": "128"}, "field 'max_seq_length': expected int"),
        ("1_Pooling/config.json", [True], "config.json: corrupt model configuration"),
        ("simlm.json", {"pooling": ["cls"]}, "simlm.json: field 'pooling': expected str"),
        ("simlm.json", {"query_max_length": "32"}, "simlm.json: field 'query_max_length': expected int"),
        ("simlm.json", {"normalize": "yes"}, "simlm.json: field 'normalize': expected bool"),
        ("simlm.json", "cls", "simlm.json: corrupt model configuration: expected an object"),
    ],
)
def test_configuration_files_of_the_wrong_types_are_one_error(tmp_path: Path, name: str, content, message) -> None:
    """`encode --model` of such a directory was a traceback (issue 10, item 8)."""
    model = _damage(st_directory(tmp_path / "m", ["Transformer", "Pooling", "Normalize"]), name, content)
    with pytest.raises(SimlmError, match=message.replace("(", r"\(")):
        resolve_settings(str(model))
