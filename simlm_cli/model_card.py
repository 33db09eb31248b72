"""Model cards: the README.md a trained model directory carries, in the Hugging Face model-card format.

The Hub shows README.md and reads its YAML front matter (base_model, library_name, pipeline_tag, tags, datasets,
model-index). `train`, `distill`, `rerank train` and `pretrain` write one; a recipe adds each evaluation after the
fact, as a model-index entry and a row of the card's evaluation table:

    python -m simlm_cli.model_card MODEL_DIR METRICS.json --name "Retriever1" [--dataset scifact] [--split test]

METRICS.json is what `simlm evaluate --json` prints ({metric: value}).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from simlm_cli.errors import SimlmError
from simlm_cli.io.json_input import read_json

CARD = "README.md"
EVALUATION = "## Evaluation"
REPOSITORY = "https://arxiv.org/abs/2207.02578"
# BEIR's datasets by their directory names; a corpus under such a directory names its dataset on the Hub.
BEIR = {
    "msmarco", "trec-covid", "nfcorpus", "nq", "hotpotqa", "fiqa", "arguana", "webis-touche2020", "cqadupstack",
    "quora", "dbpedia-entity", "scidocs", "fever", "climate-fever", "scifact", "bioasq", "signal1m", "trec-news",
    "robust04",
}  # fmt: skip
_METRIC_NAMES = {"ndcg": "nDCG", "mrr": "MRR", "recall": "Recall", "r": "Recall", "map": "MAP", "p": "P"}


@dataclass(frozen=True)
class CardKind:
    """What a kind of training produces and how the Hub and its users should treat it. Every objective declares
    its kind (`card_kind`); the card follows that, not the objective's name. In `what`, `command` and `tags`,
    "{objective}" stands for the objective's name; in `usage`, "{name}" for the model's directory or Hub id."""

    what: str
    command: str
    library_name: str
    pipeline_tag: str
    tags: tuple[str, ...]
    usage: str

    def noted(self, note: str) -> CardKind:
        """The same kind with `note` appended to what it is, e.g. " (distilled)"."""
        return replace(self, what=self.what + note)

    def named(self, objective: str) -> CardKind:
        return replace(
            self,
            what=self.what.format(objective=objective),
            command=self.command.format(objective=objective),
            tags=tuple(tag.format(objective=objective) for tag in self.tags),
        )


def _snippets(bash: str, python: str) -> str:
    """A card's usage: a shell block, then a Python block."""
    return f"```bash\n{bash}```\n\n```python\n{python}```\n"


RETRIEVER_CARD = CardKind(
    what="bi-encoder retriever",
    command="simlm {objective}",
    library_name="sentence-transformers",
    pipeline_tag="sentence-similarity",
    tags=("sentence-transformers", "feature-extraction", "dense-retrieval", "simlm"),
    usage=_snippets(
        "simlm encode --model {name} --corpus corpus.jsonl | simlm index --output idx\n"
        "simlm search --index idx --queries queries.jsonl --model {name} --output run.trec\n",
        "from sentence_transformers import SentenceTransformer\n\n"
        'model = SentenceTransformer("{name}")\n'
        'queries = model.encode(["what causes fever?"])  # same vectors as `simlm encode`\n',
    ),
)
RERANKER_CARD = CardKind(
    what="cross-encoder re-ranker",
    command="simlm rerank train",
    library_name="sentence-transformers",
    pipeline_tag="text-ranking",
    tags=("sentence-transformers", "cross-encoder", "reranker", "simlm"),
    usage=_snippets(
        "simlm rerank run --model {name} --run run.trec --queries queries.jsonl --corpus corpus.jsonl "
        "--output reranked.trec\n",
        "from sentence_transformers import CrossEncoder\n\n"
        'model = CrossEncoder("{name}")\n'
        'scores = model.predict([("what causes fever?", "Fever is caused by ...")])\n',
    ),
)
PRETRAINED_CARD = CardKind(
    what="encoder pretrained with the {objective} objective",
    command="simlm pretrain",
    library_name="transformers",
    pipeline_tag="feature-extraction",
    tags=("simlm", "retrieval-pretraining", "{objective}"),
    usage="Fine-tune it into a retriever (`simlm mine`, then `simlm train`):\n\n"
    + _snippets(
        "simlm train --model {name} --train-file train.jsonl --corpus corpus.jsonl --output retriever\n",
        "from transformers import AutoModel, AutoTokenizer\n\n"
        'model = AutoModel.from_pretrained("{name}")\n'
        'tokenizer = AutoTokenizer.from_pretrained("{name}")\n',
    ),
)


def _is_hub_id(model: str | None) -> bool:
    return bool(model) and not os.path.exists(model) and re.fullmatch(r"[\w.-]+(/[\w.-]+)?", model) is not None


def dataset_of(path: str | None) -> str | None:
    """`BeIR/NAME` when the corpus lies in a BEIR dataset's directory (scifact/corpus.jsonl), else None."""
    if not path:
        return None
    for part in reversed(Path(path).resolve().parts[:-1]):
        if part.lower() in BEIR:
            return f"BeIR/{part.lower()}"
    return None


def command_line(argv: list[str] | None = None) -> str:
    """The command as the user typed it (`python -m simlm_cli` and the console script both shown as `simlm`)."""
    argv = list(sys.argv if argv is None else argv)
    if argv and (os.path.basename(argv[0]) in ("simlm", "__main__.py") or argv[0].endswith("simlm_cli")):
        argv[0] = "simlm"
    return shlex.join(argv)


def split_card(text: str) -> tuple[dict[str, Any], str]:
    """(front matter, body) of a card; a card without front matter has empty metadata."""
    import yaml

    match = re.match(r"^---\n(.*?)\n---\n?", text, re.S)
    if not match:
        return {}, text
    return yaml.safe_load(match[1]) or {}, text[match.end() :]


def join_card(meta: dict[str, Any], body: str) -> str:
    import yaml

    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000).strip()
    return f"---\n{front}\n---\n\n{body.lstrip()}"


def _losses(records: list[dict[str, Any]]) -> str | None:
    losses = [(r["step"], r["loss"]) for r in records if isinstance(r.get("loss"), (int, float))]
    if not losses:
        return None
    (s0, l0), (s1, l1) = losses[0], losses[-1]
    return f"loss {l0:.4f} at step {s0} -> {l1:.4f} at step {s1}"


def training_card(
    config: Any, kind: CardKind, records: list[dict[str, Any]], name: str, argv: list[str] | None = None
) -> str:
    """The card of a finished training run (`config`: the trainer's TrainConfig; `kind`: what its objective
    declares; `records`: its log)."""
    from simlm_cli.models.settings import DEFAULT_MODEL

    kind = kind.named(config.objective)
    base = config.model or DEFAULT_MODEL
    meta: dict[str, Any] = {}
    if _is_hub_id(base):
        meta["base_model"] = base
    meta.update(library_name=kind.library_name, pipeline_tag=kind.pipeline_tag, tags=list(kind.tags))
    datasets = sorted({d for d in (dataset_of(config.corpus),) if d})
    if datasets:
        meta["datasets"] = datasets
    options = dict(config.objective_options)
    train_file = options.pop("train_file", None) or getattr(config, "train_file", None)
    lines = [
        f"# {Path(name).name}",
        "",
        f"A {kind.what} trained with [simlm]({REPOSITORY}) (`{kind.command}`) from `{base}`.",
        "",
        "## Training",
        "",
        f"- Command: `{command_line(argv)}`",
        f"- Corpus: `{config.corpus}`" + (f"; training file: `{train_file}`" if train_file else ""),
        f"- Steps: {config.max_steps} optimizer steps of {config.batch_size} x {config.grad_accum} "
        f"(batch x accumulation), peak learning rate {config.lr:g}, warmup {config.warmup_steps}, seed {config.seed}"
        + (" (a --dry-run smoke test)" if config.dry_run else ""),
        f"- Device and precision: {config.device}, {getattr(config.precision, 'value', config.precision)}",
    ]
    if options:
        lines.append("- Options: " + ", ".join(f"{k}={v}" for k, v in sorted(options.items())))
    if loss := _losses(records):
        lines.append(f"- Loss: {loss}; the curve is `loss.png`, every logged step `train_log.jsonl`")
    lines += ["", "## Usage", "", kind.usage.format(name=name)]
    return join_card(meta, "\n".join(lines))


def write_training_card(
    directory: Path,
    config: Any,
    kind: CardKind,
    records: list[dict[str, Any]],
    name: str,
    argv: list[str] | None = None,
) -> Path:
    path = Path(directory) / CARD
    path.write_text(training_card(config, kind, records, name, argv), encoding="utf-8")
    return path


def _metric_type(metric: str) -> str:
    return metric.lower().replace("@", "_at_")


def _metric_title(metric: str) -> str:
    family, _, k = metric.partition("@")
    title = _METRIC_NAMES.get(family.lower(), family)
    return f"{title}@{k}" if k else title


def add_metrics(
    directory: str | Path,
    metrics: dict[str, float],
    name: str,
    dataset: str | None = None,
    split: str = "test",
) -> Path:
    """Record one evaluation in the card of `directory`: a model-index result (replacing one of the same name,
    dataset and split) and the card's evaluation table, rebuilt from every result. A directory with no card gets
    a bare one."""
    path = Path(directory) / CARD
    meta, body = split_card(path.read_text(encoding="utf-8")) if path.is_file() else ({}, f"# {Path(directory).name}\n")
    kind_task = "reranking" if meta.get("pipeline_tag") == "text-ranking" else "retrieval"
    dataset = dataset or (meta.get("datasets") or [None])[0] or "unknown"
    values = {m: float(v) for m, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if not values:
        raise ValueError(f"{name}: no numeric metrics to add")
    result = {
        "task": {"type": kind_task},
        "dataset": {"name": dataset.split("/")[-1], "type": dataset, "split": split},
        "metrics": [
            {"type": _metric_type(m), "value": round(v, 4), "name": f"{name}: {_metric_title(m)}"}
            for m, v in values.items()
        ],
    }
    index = meta.setdefault("model-index", [{"name": Path(directory).resolve().name, "results": []}])
    results = index[0].setdefault("results", [])
    key = (name, dataset, split)

    def same(r: dict[str, Any]) -> bool:
        first = (r.get("metrics") or [{}])[0].get("name", "")
        return (first.split(":")[0], r["dataset"].get("type"), r["dataset"].get("split")) == key

    at = next((i for i, r in enumerate(results) if same(r)), None)
    if at is None:
        results.append(result)
    else:  # a re-run of the same evaluation keeps its row
        results[at] = result
    path.write_text(join_card(meta, _with_table(body, results)), encoding="utf-8")
    return path


def _with_table(body: str, results: list[dict[str, Any]]) -> str:
    """The body with its evaluation section rebuilt from the model-index results."""
    columns: list[str] = []
    for r in results:
        for m in r["metrics"]:
            title = m["name"].split(": ", 1)[-1]
            if title not in columns:
                columns.append(title)
    rows = ["| evaluation | dataset | split | " + " | ".join(columns) + " |", "|---|---|---|" + "---|" * len(columns)]
    for r in results:
        cells = {m["name"].split(": ", 1)[-1]: f"{m['value']:.4f}" for m in r["metrics"]}
        stage = r["metrics"][0]["name"].split(": ", 1)[0]
        rows.append(
            f"| {stage} | {r['dataset']['type']} | {r['dataset'].get('split', '')} | "
            + " | ".join(cells.get(c, "") for c in columns)
            + " |"
        )
    section = f"{EVALUATION}\n\n" + "\n".join(rows) + "\n"
    start = body.find(EVALUATION)
    if start < 0:
        return body.rstrip() + "\n\n" + section
    following = body.find("\n## ", start + len(EVALUATION))
    rest = body[following + 1 :] if following >= 0 else ""
    return body[:start] + section + ("\n" + rest if rest else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simlm_cli.model_card",
        description="Add an evaluation (`simlm evaluate --json` output) to a model directory's README.md card.",
    )
    parser.add_argument(
        "model_dir", help="A model directory written by simlm (train, distill, rerank train, pretrain)."
    )
    parser.add_argument("metrics", help="JSON file of {metric: value}, as `simlm evaluate --json` prints.")
    parser.add_argument("--name", required=True, help="What was evaluated, e.g. Retriever1 or 'Retriever2 + BM25'.")
    parser.add_argument("--dataset", help="Dataset (e.g. BeIR/scifact). Default: the card's first dataset.")
    parser.add_argument("--split", default="test", help="Default: test.")
    args = parser.parse_args(argv)
    if not Path(args.model_dir).is_dir():
        parser.error(f"{args.model_dir}: not a directory")
    try:
        metrics = read_json(args.metrics)
        path = add_metrics(args.model_dir, metrics, args.name, args.dataset, args.split)
    except (OSError, ValueError, SimlmError) as err:
        parser.error(str(err))
    print(f"model_card: {path}: added {args.name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
