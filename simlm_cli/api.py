"""simlm's public plugin API: everything a pretraining objective needs, from one import that keeps its meaning
across simlm releases of the same major API version.

    from simlm_cli.api import Objective, Option, StepOutput

    class MyObjective(Objective):
        name = "my-objective"
        summary = "one line for `simlm pretrain --objective my-objective --help`"
        options = (Option("mask-rate", float, 0.3, "Share of words masked."),)
        api_version = "1.0"  # the API this objective was written against (API_VERSION when it was)

        def forward(self, batch, rng) -> StepOutput: ...

and in the plugin's pyproject.toml::

    [project.entry-points."simlm.objectives"]
    my-objective = "my_package.module:MyObjective"

- `Objective`: the base class (an `nn.Module`): `__init__(model_path, tokenizer, opts, log)` loads the encoder as a
  masked LM (`self.mlm`, `self.encoder`, `self.head`) and a whole-word masker (`self.masker`); `forward(batch,
  rng)` gets `input_ids` and `attention_mask` and returns a `StepOutput`; `validate`, `prediction_heads`,
  `extra_config`, `save_pretrained` and `load_extras` may be overridden.
- `Option`: one objective option, `--name value` on the command line, parsed to its type and validated.
- `StepOutput`: the step's loss, its logged parts, and (for replacing objectives) the share of replaced tokens.
- Building blocks the bundled objectives share: `Generator`, `ReplacedInputs`, `replacement_options`,
  `generator_options`, `encoder_layers`, `freeze_unshared`, `mlm_targets`; `SimlmError` for a one-line user error.
- The registry: `GROUP` (the entry-point group), `objective_names()`, `load_objective(name)`.

Versioning: `API_VERSION` is "major.minor". A minor release only adds; a major release may change or remove what
is here. An objective declares the version it was written for as `api_version`; loading it checks that the major
versions are equal and that this simlm's minor version is at least the objective's, and refuses it in one line
otherwise (as it refuses an objective that declares none). Nothing outside this module is part of the API.
"""

from __future__ import annotations

from simlm_cli.errors import SimlmError
from simlm_cli.training.pretraining.objective import (
    Generator,
    Objective,
    ReplacedInputs,
    encoder_layers,
    freeze_unshared,
    generator_options,
    mlm_targets,
    replacement_options,
)
from simlm_cli.training.pretraining.registry import API_VERSION, GROUP, Option, load_objective, objective_names
from simlm_cli.training.step import StepOutput

__all__ = [
    "API_VERSION",
    "GROUP",
    "Generator",
    "Objective",
    "Option",
    "ReplacedInputs",
    "SimlmError",
    "StepOutput",
    "encoder_layers",
    "freeze_unshared",
    "generator_options",
    "load_objective",
    "mlm_targets",
    "objective_names",
    "replacement_options",
]
