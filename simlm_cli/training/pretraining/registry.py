"""Pretraining objectives are plugins, found through the `simlm.objectives` entry-point group.

A third party adds one from its own package::

    [project.entry-points."simlm.objectives"]
    my-objective = "my_package.module:MyObjective"

The class subclasses `simlm_cli.api.Objective` (the public plugin API: `simlm_cli.api`), declares its `options` and
the API version it was written for (`api_version`), which `load_objective` checks against `API_VERSION`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from enum import Enum
from importlib.metadata import entry_points
from typing import Any

from simlm_cli.errors import SimlmError

GROUP = "simlm.objectives"
# The plugin API's version, "major.minor" (see simlm_cli.api): a minor release only adds, a major one may break.
API_VERSION = "1.0"


class TrainOnly(str, Enum):
    """`simlm pretrain --train-only`: which parameters train. `head` fits the objective's prediction heads on a
    frozen encoder (e.g. a fresh MLM head on a checkpoint that has none), so that a random head's large loss never
    flows into the encoder; the result is a masked LM that can serve as rlm's/rtd's `--generator`."""

    all = "all"
    head = "head"


@dataclass(frozen=True)
class Option:
    """One objective option: `--name value` (or `--option name=value`) on the command line."""

    name: str  # dashed, e.g. "encoder-mask-rate"
    type: type  # float, int, str or bool
    default: Any
    help: str

    @property
    def key(self) -> str:
        return self.name.replace("-", "_")

    def parse(self, raw: Any, objective: str) -> Any:
        if not isinstance(raw, str) or self.type is str:
            return raw if raw is None or isinstance(raw, self.type) else self.type(raw)
        try:
            if self.type is bool:
                low = raw.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError(raw)
            return self.type(raw)
        except ValueError:
            raise SimlmError(
                f"--{self.name} {raw!r}: {objective} expects {self.type.__name__} for this option"
            ) from None


def objective_names() -> list[str]:
    return sorted({ep.name for ep in entry_points(group=GROUP)})


def load_objective(name: str) -> type:
    """The objective class registered under `name`; an unknown name is a one-line error with suggestions."""
    matches = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not matches:
        names = objective_names()
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise SimlmError(f"unknown objective {name!r}{hint}; available: {', '.join(names) or 'none installed'}")
    try:
        cls = matches[0].load()
    except Exception as err:  # a broken third-party plugin must not crash the CLI with a traceback
        raise SimlmError(f"objective {name!r} ({matches[0].value}) failed to load: {err}") from None
    check_api_version(cls, f"objective {name!r} ({matches[0].value})")
    return cls


def check_api_version(cls: type, what: str) -> None:
    """A one-line error unless `cls` is an Objective written for this API: the same major version, and a minor
    version no newer than this simlm's (a plugin may use what its minor version added)."""
    from simlm_cli.training.pretraining.objective import Objective

    if not (isinstance(cls, type) and issubclass(cls, Objective)):
        raise SimlmError(f"{what} is not a subclass of simlm_cli.api.Objective")
    declared = getattr(cls, "api_version", "")
    try:
        major, minor = (int(part) for part in str(declared).split("."))
    except ValueError:
        raise SimlmError(
            f"{what} declares api_version {declared!r}; expected 'major.minor', e.g. {API_VERSION!r} "
            "(see simlm_cli.api)"
        ) from None
    own_major, own_minor = (int(part) for part in API_VERSION.split("."))
    if major != own_major or minor > own_minor:
        raise SimlmError(f"{what} needs simlm plugin API {declared}; this simlm provides {API_VERSION}")


def all_objectives() -> dict[str, type]:
    return {name: load_objective(name) for name in objective_names()}


def parse_extra_args(args: list[str]) -> list[tuple[str, str | None]]:
    """`--key value`, `--key=value`, `--flag` and `--no-flag` from the unparsed tail of the command line."""
    pairs: list[tuple[str, str | None]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise SimlmError(f"unexpected argument {arg!r}")
        key = arg[2:]
        if "=" in key:
            key, value = key.split("=", 1)
            pairs.append((key, value))
            i += 1
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            pairs.append((key, args[i + 1]))
            i += 2
        else:
            pairs.append((key, None))  # a boolean flag
            i += 1
    return pairs


def resolve_options(
    cls: type, pairs: list[tuple[str, str | None]], generic_flags: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Validate `pairs` against `cls.options`; returns every option's value keyed by its python name."""
    by_name = {opt.name: opt for opt in cls.options}
    values = {opt.key: opt.default for opt in cls.options}
    for raw_key, raw_value in pairs:
        key = raw_key.replace("_", "-")
        value: Any = raw_value
        opt = by_name.get(key)
        if opt is None and key.startswith("no-") and key[3:] in by_name and by_name[key[3:]].type is bool:
            opt = by_name[key[3:]]
            if raw_value is not None:
                raise SimlmError(f"--{key} takes no value (use --{opt.name} {raw_value} instead)")
            value = False
        if opt is None:
            known = list(by_name) + [f.lstrip("-") for f in generic_flags]
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean --{close[0]}?)" if close else ""
            takes = ", ".join(f"--{n}" for n in by_name) or "no options"
            raise SimlmError(f"objective {cls.name!r} does not take --{key}{hint}; it takes {takes}")
        if value is None:
            if opt.type is not bool:
                raise SimlmError(f"--{opt.name} needs a value ({opt.type.__name__})")
            value = True
        values[opt.key] = opt.parse(value, cls.name)
    cls.validate(values)
    return values


def describe_options(cls: type) -> str:
    lines = [f"{cls.name}: {cls.summary}"]
    if not cls.options:
        lines.append("  (no options)")
    for opt in cls.options:
        kind = "flag" if opt.type is bool else opt.type.__name__
        default = "none" if opt.default in ("", None) else opt.default
        lines.append(f"  --{opt.name} {kind.upper()} (default: {default}) {opt.help}")
    return "\n".join(lines)
