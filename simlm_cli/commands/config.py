"""`--config FILE` on every command: its options read from a JSON or YAML file, flags on the command line
overriding the file; and the resolved options (each final value and where it came from) for `run_config`.

The file's values become click's `default_map` for the command, so they pass through the same conversion and
checks as the flags, and an option's source (flag, config file, default) is click's own record of it. Keys are the
flags' names without the dashes, dashed or with underscores (`passage-max-length` or `passage_max_length`); the
record of resolved options a run writes (`{"tool": "simlm", "command": ..., "options": {...}}`: a training
directory's simlm-config.json, an index's meta.json `run_config`) is read back as it is.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from enum import Enum
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperCommand

from simlm_cli.errors import InputError
from simlm_cli.io.json_input import loads

_SOURCES = {"COMMANDLINE": "flag", "DEFAULT_MAP": "config file", "DEFAULT": "default", "ENVIRONMENT": "environment"}
_FILE_KEY = "simlm.config_file"  # ctx.meta: the --config path, for the errors and the resolved record
_KEYS = "simlm.config_keys"  # ctx.meta: parameter name -> the key the file gave it, for the errors
# The resolved options of the command now running (set around its callback by `ConfiguredCommand.invoke`).
_RESOLVED: ContextVar[dict[str, Any] | None] = ContextVar("simlm_resolved_options", default=None)


def read_config_file(path: str) -> dict[str, Any]:
    """A config file's mapping: YAML for .yaml/.yml, JSON otherwise; a syntax error names the file and line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise InputError(path, f"cannot read the config file ({err.strerror or err})") from None
    if Path(path).suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            raise InputError(path, f"not valid YAML ({getattr(err, 'problem', None) or err})", line=line) from None
    else:
        try:
            data = loads(text, path)
        except json.JSONDecodeError as err:
            raise InputError(path, f"not valid JSON ({err.msg})", line=err.lineno) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(path, "a config file holds a mapping of option names to values")
    return data


def _key(param: Any) -> str:
    """The name an option has in a config file: its first long flag without the dashes, with underscores."""
    longs = [opt for opt in getattr(param, "opts", []) if opt.startswith("--")]
    return longs[0][2:].replace("-", "_") if longs else param.name


def _names(command: Any) -> dict[str, str]:
    """Every key a config file may use for `command`'s options -> the option's parameter name."""
    names: dict[str, str] = {}
    for param in command.params:
        if not param.expose_value:  # --help, --config itself
            continue
        longs = [opt[2:] for opt in getattr(param, "opts", []) if opt.startswith("--")]
        for name in (param.name, *longs, *(long.replace("-", "_") for long in longs)):
            names[name] = param.name
    return names


def _options_of(path: str, data: dict[str, Any], command_name: str) -> dict[str, Any]:
    """The options in a config file: the mapping itself, or the `options` of a record `run_config` wrote (which
    must be this command's), alone or in an index's meta.json."""
    if isinstance(data.get("run_config"), dict):
        data = data["run_config"]
    if data.get("tool") != "simlm" or not isinstance(data.get("options"), dict):
        return data
    if data.get("command") != command_name:
        raise InputError(path, f"the resolved options of `simlm {data.get('command')}`, not `simlm {command_name}`")
    return data["options"]


def _checked(ctx: typer.Context, path: str, options: dict[str, Any]) -> dict[str, Any]:
    """The file's options by parameter name; an unknown key, a list where one value belongs (or the reverse), or
    true/false for a number, is an error naming the file and key. Values are converted later, as the flags are (`ConfiguredCommand`)."""
    names = _names(ctx.command)
    params = {param.name: param for param in ctx.command.params}
    checked: dict[str, Any] = {}
    for key, value in options.items():
        name = names.get(str(key))
        if name is None:
            raise InputError(path, f"no such option for `{ctx.command_path}`", field=str(key))
        many = params[name].multiple or params[name].nargs != 1
        if value is not None and (isinstance(value, dict) or isinstance(value, list) != many):
            raise InputError(
                path, "expected a list" if many else "expected one value, not a list or mapping", field=key
            )
        if isinstance(value, bool) and not getattr(params[name], "is_flag", False):  # int(true) would pass as 1
            raise InputError(
                path,
                f"expected a value for --{_key(params[name]).replace('_', '-')}, not {json.dumps(value)}",
                field=key,
            )
        checked[name] = value
        ctx.meta.setdefault(_KEYS, {})[name] = str(key)
    return checked


def _load(ctx: typer.Context, _param: Any, value: str | None) -> None:
    """--config's callback (eager, so before any other option is read): the file's options become the command's
    defaults; flags given on the command line still win."""
    if value is None or ctx.resilient_parsing:
        return
    command_name = " ".join(ctx.command_path.split()[1:])
    options = _checked(ctx, value, _options_of(value, read_config_file(value), command_name))
    ctx.default_map = {**(ctx.default_map or {}), **options}
    ctx.meta[_FILE_KEY] = value


def _config_param() -> Any:
    """The --config option, built by Typer from a declaration like every other option."""

    def holder(
        config: str = typer.Option(
            None,
            "--config",
            metavar="FILE",
            is_eager=True,
            expose_value=False,
            callback=_load,
            help="Read options from a JSON or YAML file (keys: the flags' names, e.g. lr, passage_max_length); "
            "flags override it. A run's simlm-config.json repeats that run.",
        ),
    ) -> None: ...

    app = typer.Typer(add_completion=False)
    app.command()(holder)
    return typer.main.get_command(app).params[0]


def _plain(value: Any) -> Any:
    """A value as JSON writes it and the option reads it back."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def resolve(ctx: typer.Context) -> dict[str, Any]:
    """Every option's final value and its source (flag, config file, default), as `run_config` writes them."""
    from simlm_cli import __version__

    options, sources = {}, {}
    for param in ctx.command.params:
        if param.name not in ctx.params:
            continue
        key = _key(param)
        options[key] = _plain(ctx.params[param.name])
        source = ctx.get_parameter_source(param.name)
        sources[key] = _SOURCES.get(source.name, source.name.lower()) if source is not None else "default"
    return {
        "tool": "simlm",
        "version": __version__,
        "command": " ".join(ctx.command_path.split()[1:]),
        "config_file": ctx.meta.get(_FILE_KEY),
        "options": options,
        "sources": sources,
    }


def resolved_options() -> dict[str, Any] | None:
    """The running command's resolved options (None outside a command, e.g. a library call)."""
    return _RESOLVED.get()


class ConfiguredCommand(TyperCommand):
    """A Typer command with --config; a value from the file that its option refuses is an error naming the file
    and key, not the flag the user never typed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(_config_param())

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except typer.BadParameter as err:
            param = err.param
            source = ctx.get_parameter_source(param.name) if param is not None and param.name else None
            if source is None or source.name != "DEFAULT_MAP":
                raise
            raise InputError(ctx.meta[_FILE_KEY], err.message, field=ctx.meta[_KEYS][param.name]) from None

    def invoke(self, ctx: typer.Context) -> Any:
        token = _RESOLVED.set(resolve(ctx))
        try:
            return super().invoke(ctx)
        finally:
            _RESOLVED.reset(token)
