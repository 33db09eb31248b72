"""Options declared once: a config dataclass's field is also its command's flag.

A command's config is a frozen dataclass whose fields carry their flag (`flag`, `argument`) or hold a group of
them (`group`: another such dataclass, e.g. BM25's k1/b/threads shared by `search` and `mine`). `command_from`
builds the Typer command from it: one parameter per flag, in field order, the default and help as declared; the
command reads the flags, checks the required ones (one error line each), converts what the flag spells as text
(`convert`), builds the config and hands it to the library function. Library code and tests build the same config
directly, with the same defaults.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any

import typer

from simlm_cli.errors import SimlmError

_FLAG = "simlm.flag"  # field metadata: the Typer parameter
_GROUP = "simlm.group"  # field metadata: the field is a dataclass of flags
_REQUIRED = object()


@dataclasses.dataclass(frozen=True)
class _Flag:
    parameter: Any  # typer.Option / typer.Argument, its default the field's
    required: bool
    cli_type: Any  # the type Typer reads (None: the field's)
    convert: Callable[[Any], Any] | None  # the flag's value -> the field's


def _field(default: Any, meta: dict[str, Any]) -> Any:
    if default is _REQUIRED:
        return dataclasses.field(metadata=meta)
    if isinstance(default, list | dict | set):  # a fresh copy per config, as dataclasses require
        return dataclasses.field(default_factory=functools.partial(type(default), default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def flag(
    *names: str,
    help: str,
    default: Any = _REQUIRED,
    cli_type: Any = None,
    convert: Callable[[Any], Any] | None = None,
    **settings: Any,
) -> Any:
    """A config field that is the command-line option `names` (the first long one names it in errors and config
    files). Without `default` it is required: the flag's own default is then None and a missing one is one error
    line (`(required)` starts its help). `cli_type`/`convert`: the flag is read as `cli_type` and converted into
    the field's value (e.g. "3:200" -> (3, 200)); `settings` go to `typer.Option` (min, max, callback, ...)."""
    required = default is _REQUIRED
    # None where the flag's value is not the field's (required, a list, converted): the field's default applies
    typer_default = None if required or isinstance(default, list) or convert is not None else default
    text = f"(required) {help}" if required else help
    parameter = typer.Option(typer_default, *names, help=text, **settings)
    return _field(default, {_FLAG: _Flag(parameter, required, cli_type, convert)})


def argument(*, help: str, default: Any = _REQUIRED, **settings: Any) -> Any:
    """A config field that is the command's positional argument(s) (a list: any number)."""
    required = default is _REQUIRED
    parameter = typer.Argument(None, help=help, **settings)
    return _field(default, {_FLAG: _Flag(parameter, required, None, None)})


def group(default_factory: Callable[[], Any]) -> Any:
    """A config field holding a dataclass of flags (shared by several commands): its flags join the command's."""
    return dataclasses.field(default_factory=default_factory, metadata={_GROUP: True})


@dataclasses.dataclass(frozen=True)
class _Param:
    name: str  # the command's parameter name (the field's, unique over the command and its groups)
    path: tuple[str, ...]  # the groups' field names down to the field
    flag: _Flag
    annotation: Any

    @property
    def display(self) -> str:
        opts = getattr(self.flag.parameter, "param_decls", ())
        longs = [opt for opt in opts if opt.startswith("--")]
        return longs[0] if longs else self.name.upper()


def _params(config_cls: type, path: tuple[str, ...] = ()) -> list[_Param]:
    hints = typing.get_type_hints(config_cls, include_extras=True)
    params: list[_Param] = []
    for field in dataclasses.fields(config_cls):
        if field.metadata.get(_GROUP):
            params += _params(hints[field.name], (*path, field.name))
        elif _FLAG in field.metadata:
            spec: _Flag = field.metadata[_FLAG]
            params.append(_Param(field.name, (*path, field.name), spec, spec.cli_type or hints[field.name]))
    return params


def flag_names(config_cls: type) -> list[str]:
    """The parameter names of `config_cls`'s flags, its groups' included, in order (for tests and docs)."""
    return [param.name for param in _params(config_cls)]


def _value(param: _Param, value: Any) -> Any:
    if isinstance(value, tuple):  # click hands repeated options over as tuples
        value = list(value)
    if value == [] and not param.flag.required:
        value = None
    if value is not None and param.flag.convert is not None:
        value = param.flag.convert(value)
    return value


def build(config_cls: type, values: dict[str, Any]) -> Any:
    """`config_cls` from a command's flag values (by parameter name); a flag left at None keeps the field's default
    where the default is not None (a list flag's empty default)."""
    params = _params(config_cls)
    missing = [param.display for param in params if param.flag.required and values.get(param.name) in (None, [], ())]
    if missing:
        raise SimlmError(f"{missing[0]} is required")
    nested: dict[str, Any] = {}
    for param in params:
        if param.name not in values:
            continue
        value = _value(param, values[param.name])
        if value is None:  # not given, where the flag's own default is None: the field's default
            field_default = _default_of(config_cls, param.path)
            if field_default is not dataclasses.MISSING:
                value = field_default
        target = nested
        for step in param.path[:-1]:
            target = target.setdefault(step, {})
        target[param.path[-1]] = value
    return _construct(config_cls, nested)


def _default_of(config_cls: type, path: tuple[str, ...]) -> Any:
    hints = typing.get_type_hints(config_cls)
    field = {f.name: f for f in dataclasses.fields(config_cls)}[path[0]]
    if len(path) > 1:
        return _default_of(hints[path[0]], path[1:])
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def _construct(config_cls: type, values: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(config_cls)
    kwargs = {}
    for field in dataclasses.fields(config_cls):
        if field.name not in values:
            continue
        value = values[field.name]
        kwargs[field.name] = _construct(hints[field.name], value) if field.metadata.get(_GROUP) else value
    return config_cls(**kwargs)


def command_from(config_cls: type, run: Callable[..., Any], context: bool = False) -> Callable[..., None]:
    """A Typer command whose flags are `config_cls`'s: it builds the config from them and calls `run(config)`
    (`run(config, ctx)` with `context`: for a command that reads more than its flags, as `pretrain` reads an
    objective's options from the rest of the command line). Its name and help are `run`'s."""
    params = _params(config_cls)
    names = [param.name for param in params]
    if len(set(names)) != len(names) or (context and "ctx" in names):
        raise TypeError(f"{config_cls.__name__}: two flags share a field name")

    def command(**values: Any) -> None:
        ctx = values.pop("ctx", None)
        config = build(config_cls, values)
        run(config, ctx) if context else run(config)

    command.__name__ = run.__name__
    command.__qualname__ = run.__qualname__
    command.__doc__ = run.__doc__
    command.__module__ = run.__module__
    signature = [
        inspect.Parameter(param.name, inspect.Parameter.KEYWORD_ONLY, default=param.flag.parameter, annotation=param.annotation)
        for param in params
    ]  # fmt: skip
    annotations = {param.name: param.annotation for param in params}
    if context:
        signature.insert(0, inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context))
        annotations = {"ctx": typer.Context} | annotations
    command.__signature__ = inspect.Signature(signature)  # type: ignore[attr-defined]
    command.__annotations__ = annotations | {"return": None}
    return command


def option_of(config_cls: type, name: str) -> Any:
    """The Typer parameter a config declares for its field `name` (or a group's), for a command that is not built
    from that config but takes the same flag (`pretrain`'s trainer flags)."""
    for param in _params(config_cls):
        if param.name == name:
            return param.flag.parameter
    raise KeyError(f"{config_cls.__name__} has no flag {name!r}")


def example(command: str, width: int = 74) -> str:
    """A help epilog showing the command line a user would most often type, kept whole (Click's `\b` stops the
    re-wrapping) and broken before an option, with shell line continuations, where it would pass `width`."""
    pieces: list[str] = []  # each option with its value(s)
    for word in command.split(" "):
        if pieces and not word.startswith("-"):
            pieces[-1] += " " + word
        else:
            pieces.append(word)
    lines, line = [], ""
    for piece in pieces:
        if line and len(line) + 1 + len(piece) > width:
            lines.append(line + " \\")
            line = "    " + piece
        else:
            line = f"{line} {piece}" if line else piece
    lines.append(line)
    return "\b\nExample:\n" + "\n".join("  " + text for text in lines)
