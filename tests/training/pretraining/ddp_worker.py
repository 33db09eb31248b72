"""Run under `torchrun --nproc-per-node 2`: trains a few steps, then each rank writes its own weights and the
corpus rows it trained on, micro-batch by micro-batch."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


class RecordingData:
    """The trainer's pretraining text, remembering which rows each micro-batch drew."""

    def __init__(self, data):
        self.data = data
        self.rows: list[list[int]] = []

    def __len__(self) -> int:
        return len(self.data)

    def batch(self, rows, epoch):
        self.rows.append([int(r) for r in rows])
        return self.data.batch(rows, epoch)


def main() -> None:
    from safetensors.torch import save_file
    from transformers import AutoTokenizer

    from simlm_cli.training.checkpoints import state_without_ties
    from simlm_cli.training.pretraining.data import TextData, load_texts
    from simlm_cli.training.pretraining.registry import load_objective, resolve_options
    from simlm_cli.training.trainer import TrainConfig, Trainer

    objective, model, corpus, output = sys.argv[1:5]
    cls = load_objective(objective)
    values = resolve_options(cls, [])
    config = TrainConfig(
        objective=objective, corpus=corpus, output=output, objective_options=values, max_steps=4, batch_size=3,
        grad_accum=2, lr=1e-3, save_steps=2, log_steps=1, max_length=32, device="cpu",
    )  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(model)
    recorded = RecordingData(TextData(load_texts(corpus), tokenizer, config.max_length))
    trainer = Trainer(
        config, lambda p, t, log: cls(p, t, values, log), tokenizer, model, log=lambda m: None, data=lambda c: recorded
    )
    trainer.run()
    rank = int(os.environ["RANK"])
    save_file(state_without_ties(trainer.model), str(Path(output) / f"rank{rank}.safetensors"))
    (Path(output) / f"rank{rank}.rows.json").write_text(json.dumps(recorded.rows))


if __name__ == "__main__":
    main()
