"""simlm_cli.flags: a command built from its config dataclass (issue 27: each flag declared once)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from enum import Enum

import pytest
import typer
from typer.testing import CliRunner

from simlm_cli.commands.config import ConfiguredCommand
from simlm_cli.errors import SimlmError
from simlm_cli.flags import argument, build, command_from, flag, flag_names, group, option_of


class Colour(str, Enum):
    red = "red"
    blue = "blue"


def _span(text: str) -> tuple[int, int]:
    start, _, end = text.partition(":")
    if not end:
        raise SimlmError(f"--span {text!r}: expected A:B")
    return int(start), int(end)


@dataclass(frozen=True, kw_only=True)
class Inner:
    depth: int = flag("--depth", default=3, min=1, help="How deep.")
    colour: Colour = flag("--colour", default=Colour.red, help="Which colour.")


@dataclass(frozen=True, kw_only=True)
class Demo:
    inputs: list[str] = argument(default=[], help="Input files.")
    output: str = flag("--output", "-o", help="Where to write.")
    weights: list[float] | None = flag("--weight", "-w", default=None, help="Repeatable.")
    names: list[str] = flag("--name", default=["a", "b"], help="Repeatable; default a and b.")
    span: tuple[int, int] = flag("--span", default=(1, 2), cli_type=str, convert=_span, help="A:B.")
    verbose: bool = flag("--verbose/--quiet", default=False, help="Talk.")
    inner: Inner = group(Inner)
    not_a_flag: int = 7  # library-only: no flag


def _app(seen: list[Demo]) -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    def demo(config: Demo) -> None:
        """Demo command."""
        seen.append(config)

    app.command("demo", cls=ConfiguredCommand)(command_from(Demo, demo))

    @app.command("other")
    def other() -> None:  # a second command, so that `demo` is a subcommand as in simlm
        pass

    return app


def _invoke(args: list[str]) -> tuple[object, list[Demo]]:
    seen: list[Demo] = []
    result = CliRunner().invoke(_app(seen), ["demo", *args])
    return result, seen


def test_flags_build_the_config_with_its_defaults() -> None:
    result, seen = _invoke(["-o", "out"])
    assert result.exit_code == 0, result.output
    assert seen == [Demo(output="out")]
    config = seen[0]
    assert config.inputs == [] and config.weights is None and config.names == ["a", "b"]
    assert config.span == (1, 2) and config.inner == Inner() and config.not_a_flag == 7


def test_given_flags_reach_the_fields_and_the_groups() -> None:
    args = ["x", "y", "-o", "out", "-w", "0.5", "-w", "2", "--name", "z", "--span", "3:9", "--verbose"]
    result, seen = _invoke([*args, "--depth", "5", "--colour", "blue"])
    assert result.exit_code == 0, result.output
    assert seen[0] == Demo(
        inputs=["x", "y"], output="out", weights=[0.5, 2.0], names=["z"], span=(3, 9), verbose=True,
        inner=Inner(depth=5, colour=Colour.blue),
    )  # fmt: skip


def test_a_missing_required_flag_is_one_error_line() -> None:
    with pytest.raises(SimlmError, match=r"^--output is required$"):
        build(Demo, {"inputs": [], "output": None})


def test_flag_settings_and_conversions_are_checked() -> None:
    result, _ = _invoke(["-o", "out", "--depth", "0"])
    assert result.exit_code == 2 and "--depth" in result.output
    with pytest.raises(SimlmError, match="--span"):
        build(Demo, {"output": "o", "span": "nope"})


def test_the_signature_lists_every_flag_once_in_field_order() -> None:
    assert flag_names(Demo) == ["inputs", "output", "weights", "names", "span", "verbose", "depth", "colour"]
    result = CliRunner().invoke(_app([]), ["demo", "--help"])
    assert result.exit_code == 0
    for text in ("(required) Where to write.", "--weight", "--depth", "How deep.", "Demo command."):
        assert text in result.output


def test_a_config_file_feeds_the_same_fields(tmp_path) -> None:
    config_file = tmp_path / "demo.json"
    config_file.write_text(json.dumps({"output": "from-file", "depth": 4, "weight": [1, 3]}))
    result, seen = _invoke(["--config", str(config_file), "--depth", "6"])
    assert result.exit_code == 0, result.output
    assert seen[0].output == "from-file" and seen[0].weights == [1.0, 3.0] and seen[0].inner.depth == 6


def test_configs_are_frozen_and_two_flags_may_not_share_a_field_name() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Demo(output="o").output = "p"  # type: ignore[misc]

    @dataclass(frozen=True, kw_only=True)
    class Clash:
        depth: int = flag("--other-depth", default=1, help="Clashes with Inner.depth.")
        inner: Inner = group(Inner)

    with pytest.raises(TypeError, match="share a field name"):
        command_from(Clash, lambda config: None)


def test_option_of_gives_the_declared_parameter() -> None:
    parameter = option_of(Demo, "depth")
    assert parameter.default == 3 and "--depth" in parameter.param_decls
    with pytest.raises(KeyError):
        option_of(Demo, "nothing")


def test_every_command_is_built_from_one_declaration_per_flag() -> None:
    """simlm's own configs: no flag name twice within a command (a group shared by two commands counts once)."""
    from simlm_cli.options.encode import EncodeConfig
    from simlm_cli.options.evaluate import EvaluateConfig
    from simlm_cli.options.fuse import FuseConfig
    from simlm_cli.options.index import IndexConfig
    from simlm_cli.options.mine import MineConfig
    from simlm_cli.options.pretrain import PretrainConfig
    from simlm_cli.options.rerank import RerankRunConfig, ScoreConfig
    from simlm_cli.options.search import SearchConfig
    from simlm_cli.options.training import DistillConfig, RerankTrainConfig, TrainRetrieverConfig

    configs = (EncodeConfig, EvaluateConfig, FuseConfig, IndexConfig, MineConfig, RerankRunConfig, ScoreConfig,
               SearchConfig, DistillConfig, RerankTrainConfig, TrainRetrieverConfig, PretrainConfig)  # fmt: skip
    for config in configs:
        names = flag_names(config)
        assert len(names) == len(set(names)), config.__name__
        command_from(config, lambda c: None)  # builds
