"""The recipes under recipes/ run end to end with --dry-run: every stage's command, the report, the results.

MS MARCO and NQ run on the hand-written samples in tests/data (the real file formats) with a tiny BERT built
here; SciFact uses the default model (the embedded MiniLM); the pretraining ablation has its own file
(test_pretrain_ablation.py). Each test is minutes of CLI processes, so all are slow tests.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
REPORT_METRICS = ("ndcg@10", "mrr@10", "recall@100", "recall@1000")

pytestmark = pytest.mark.slow


def build_tiny_mlm(directory: Path, texts: list[str]) -> Path:
    """A 2-layer, 32-wide BERT with an MLM head (pretraining needs one; RLM also uses it as the generator) and a
    word-level vocabulary of the sample's words, so nothing is [UNK]. 256 positions cover the re-ranker's pairs."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    words = sorted({w for text in texts for w in re.findall(r"[a-z0-9]+", text.lower())})
    marks = sorted({c for text in texts for c in text if not c.isalnum() and not c.isspace()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *marks, *words]
    directory.mkdir(parents=True, exist_ok=True)
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(directory)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
        initializer_range=0.3,  # spreads a random model's [CLS] vectors so rankings do not tie (tests/conftest.py)
    )
    torch.manual_seed(0)
    BertForMaskedLM(config).save_pretrained(directory)
    return directory


def sample_texts(sample: Path) -> list[str]:
    return [line for path in sorted(sample.glob("*.tsv")) for line in path.read_text(encoding="utf-8").splitlines()]


def run_recipe(
    name: str, output: Path, *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = (
        os.environ
        | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        | (env or {})
    )
    done = subprocess.run(
        ["bash", str(ROOT / "recipes" / name), "--output", str(output), "--dry-run", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=2400,  # minutes of CLI processes; many more on a 2-core machine shared with other work
    )
    assert done.returncode == 0, f"{name} exited {done.returncode}:\n{done.stderr[-4000:]}"
    return done


def check_results(output: Path, stages: list[str]) -> list[dict]:
    """results.json lists `stages` in order, every metric it has is in [0, 1], and results.md/png exist."""
    results = json.loads((output / "results.json").read_text())
    assert [row["stage"] for row in results["rows"]] == stages
    for row in results["rows"]:
        for metric in REPORT_METRICS:
            value = row[metric]
            assert value is None or 0.0 <= value <= 1.0, (row["stage"], metric, value)
        assert row.get("seconds", -1) >= 0 or row["stage"].startswith("Final")  # the final run: a choice, not a stage
    assert (output / "results.md").stat().st_size > 0
    assert (output / "results.png").read_bytes()[:4] == b"\x89PNG"
    return results["rows"]


def check_stage_metrics(output: Path, names: list[str], metrics: tuple[str, ...]) -> None:
    """Each stage's `simlm evaluate --json` holds the dataset's own metrics (some are not report.py columns)."""
    for name in names:
        values = json.loads((output / f"{name}.json").read_text())
        for metric in metrics:
            assert 0.0 <= values[metric] <= 1.0, (name, metric, values)


@pytest.fixture(scope="module")
def marco_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_mlm(tmp_path_factory.mktemp("marco") / "bert", sample_texts(DATA / "msmarco_sample"))


@pytest.fixture(scope="module")
def nq_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_mlm(tmp_path_factory.mktemp("nq") / "bert", sample_texts(DATA / "nq_sample"))


def test_msmarco_dry_run(tmp_path: Path, marco_model: Path) -> None:
    out = tmp_path / "msmarco"
    run_recipe("msmarco.sh", out, "--data", DATA / "msmarco_sample", "--model", marco_model, "--pretrain",
               "--generator", marco_model, "--reranker-model", marco_model)  # fmt: skip
    rows = check_results(
        out,
        ["RLM pretraining", "BM25", "Retriever1", "Retriever2", "Re-ranker (top 200 of Retriever2)",
         "Retriever_distill"],
    )  # fmt: skip
    assert all(rows[0][m] is None for m in REPORT_METRICS)  # pretraining has a time, no retrieval metrics
    assert all(isinstance(row[m], float) for row in rows[1:] for m in REPORT_METRICS)
    check_stage_metrics(out, ["bm25", "retriever1", "retriever2", "reranker", "distill"],
                        ("mrr@10", "recall@50", "recall@1000"))  # fmt: skip
    # The retrievers were fine-tuned from the RLM output, not from --model.
    assert (out / "models" / "pretrain" / "config.json").is_file()
    assert (out / "models" / "distill" / "config.json").is_file()


def test_nq_dry_run(tmp_path: Path, nq_model: Path) -> None:
    out = tmp_path / "nq"
    run_recipe("nq.sh", out, "--data", DATA / "nq_sample", "--model", nq_model, "--reranker-model", nq_model)
    rows = check_results(
        out, ["BM25", "Retriever1", "Retriever2", "Re-ranker (top 100 of Retriever2)", "Retriever_distill"]
    )
    assert all(isinstance(row[m], float) for row in rows for m in REPORT_METRICS)
    check_stage_metrics(out, ["bm25", "retriever1", "retriever2", "reranker", "distill"],
                        ("recall@20", "recall@100", "mrr@10", "success@20", "success@100"))  # fmt: skip
    # BM25 over the sample's 20 passages: every judged passage is within the top 100.
    assert json.loads((out / "bm25.json").read_text())["recall@100"] == 1.0


SCIFACT = ROOT / "simlm_cli" / "data" / "scifact"
BEIR_STAGES = ["BM25", "zero-shot", "zero-shot + BM25", "Retriever1", "Retriever2", "best dense + BM25",
               "Re-ranker alone (top 20)", "Re-ranker + its first stage"]  # fmt: skip


def test_scifact_is_the_beir_chain_on_the_shipped_data() -> None:
    """scifact.sh hands its flags to beir.sh with the shipped directory (beir.sh itself runs in the next test; one
    dry run of the chain is enough for CI's time): an unknown flag gets beir.sh's usage line."""
    done = subprocess.run(["bash", str(ROOT / "recipes" / "scifact.sh"), "--no-such-flag"], capture_output=True,
                          text=True, cwd=ROOT)  # fmt: skip
    assert done.returncode == 2
    assert "beir.sh --data DIR" in done.stderr
    assert "--data simlm_cli/data/scifact" in (ROOT / "recipes" / "scifact.sh").read_text()


def make_beir_subset(directory: Path) -> Path:
    """Another BEIR dataset from SciFact's files: the passages of 60 judged train queries plus 240 others, those
    queries split into its own train and test halves by id, with graded qrels (every other judgment grade 2)."""
    judged: dict[str, list[str]] = {}
    for line in (SCIFACT / "qrels" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        qid, docid, _ = line.split("\t")
        judged.setdefault(qid, []).append(docid)
    qids = sorted(judged)[:60]
    wanted = {d for q in qids for d in judged[q]}
    corpus_lines = (SCIFACT / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    keep = [ln for ln in corpus_lines if json.loads(ln)["_id"] in wanted]
    keep += [ln for ln in corpus_lines if json.loads(ln)["_id"] not in wanted][:240]
    (directory / "qrels").mkdir(parents=True)
    (directory / "corpus.jsonl").write_text("\n".join(keep) + "\n", encoding="utf-8")
    queries = [ln for ln in (SCIFACT / "queries.jsonl").read_text(encoding="utf-8").splitlines()
               if json.loads(ln)["_id"] in set(qids)]  # fmt: skip
    (directory / "queries.jsonl").write_text("\n".join(queries) + "\n", encoding="utf-8")
    for name, part in (("train", qids[0::2]), ("test", qids[1::2])):
        rows = [f"{q}\t{d}\t{1 + i % 2}" for q in part for i, d in enumerate(judged[q])]
        (directory / "qrels" / f"{name}.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n")
    return directory


def test_beir_recipe_on_another_dataset(tmp_path: Path) -> None:
    data = make_beir_subset(tmp_path / "subset")
    out = tmp_path / "out"
    # fp32, not auto's choice (bf16 on CPUs with AVX512-BF16), so the flag's arrival is visible on any machine
    # The re-ranker's interpolation retrained (it is always built): the tiny budget's final run is often untrained
    done = run_recipe("beir.sh", out, "--data", data, "--precision", "fp32", "--final-retrain",
                      env={"SIMLM_RECIPE_RETRAIN_STAGE": "reranker"})  # fmt: skip
    check_precision_reached(out, done.stderr, "fp32")
    stages = [row["stage"] for row in json.loads((out / "results.json").read_text())["rows"]]
    assert check_final_retrain(out, "reranker", done.stderr)
    finals = ["Final: the best on dev", "Final, retrained on fit + dev"]
    assert stages[: len(BEIR_STAGES)] == BEIR_STAGES and stages[-len(finals) :] == finals
    assert set(stages[len(BEIR_STAGES) : -len(finals)]) <= {"Retriever_distill", "Retriever_distill + BM25"}
    rows = check_results(out, stages)
    assert all(isinstance(row[m], float) for row in rows for m in REPORT_METRICS)
    assert "subset test" in (out / "results.md").read_text()
    # The dev split: a quarter of the train queries, held out of every model's training.
    fit, dev = (qids(out / "qrels" / f"{part}.tsv") for part in ("fit", "dev"))
    assert fit and dev and not fit & dev and fit | dev == qids(data / "qrels" / "train.tsv")
    tuned = check_choices_read_dev_only(out, data / "qrels" / "test.tsv")
    # Every fusion and interpolation weight was tuned on dev, and says so.
    for name in ("zeroshot_bm25", "s42/dense_bm25", "s42/reranker"):
        report = json.loads((out / f"{name}.fuse.json").read_text())
        assert abs(sum(report["weights"]) - 1.0) < 1e-9, (name, report)
        assert Path(report["tune_on"]) == out / "qrels" / "dev.tsv", report
    assert {"fuse --tune-on", "early stopping", "stage keeping"} <= tuned
    check_dropped_not_built_upon(out)


FINAL_MODELS = {  # the seed's final run -> the trained model --final-retrain trains again (None: none)
    "retriever1": "retriever1", "retriever2": "retriever2", "distill": "distill", "reranker_alone": "reranker_alone",
    "dense_bm25": "dense", "distill_bm25": "distill", "reranker": "reranker_alone",
}  # fmt: skip


def check_final_retrain(out: Path, final: str, stderr: str) -> bool:
    """--final-retrain: after every choice of seed 42, the last trained model of its final run (here `final`)
    trained once more on all train queries (fit + dev) for the epochs dev chose, its fusion weights as tuned on dev;
    or, when that run has no trained model, a line saying so and no retrain. Returns whether a retrain ran."""
    commands = logged_commands(out)
    retrain = [argv for purpose, argv in commands if purpose == "retrain"]
    if FINAL_MODELS.get(final) is None:
        assert not retrain and "has no trained model" in stderr, (final, retrain)
        return False
    stage = FINAL_MODELS[final]
    if stage == "dense":
        stage = json.loads((out / "s42" / "dense_bm25.stage.json").read_text())["dense"].removeprefix("s42/")
    first = next(i for i, (purpose, _) in enumerate(commands) if purpose == "retrain")
    assert all(purpose in ("retrain", "report", "keep", "judged") for purpose, _ in commands[first:]), commands[first:]
    fit, dev = (qids(out / "qrels" / f"{part}.tsv") for part in ("fit", "dev"))
    (mined,) = [argv for argv in retrain if argv[1] == "mine"]
    assert qids(Path(flag_values(mined, "--qrels")[0])) == fit | dev
    trainer = [argv for argv in retrain if "--train-file" in argv]
    assert len(trainer) == 1 and "--save-epochs" not in trainer[0]
    chosen = json.loads((out / "s42" / f"{stage}.stage.json").read_text())["epoch"]
    assert flag_values(trainer[0], "--epochs") == [chosen] and flag_values(trainer[0], "--seed") == ["42"]
    assert flag_values(trainer[0], "--output") == [str(out / "models" / "s42" / f"retrained.{stage}")]
    if final in ("dense_bm25", "distill_bm25", "reranker"):
        (fused,) = [argv for argv in retrain if argv[1] == "fuse"]
        weights = json.loads((out / "s42" / f"{final}.fuse.json").read_text())["weights"]
        assert [float(w) for w in flag_values(fused, "--weight")] == weights and "--tune-on" not in fused
    compared = json.loads((out / "s42" / "final_retrained.compare.json").read_text())["comparisons"][0]
    assert compared["baseline"].endswith("s42/final.trec"), compared
    return True


def qids(qrels: Path) -> set[str]:
    lines = qrels.read_text(encoding="utf-8").splitlines()
    return {line.split()[0] for line in lines[1:] if line.strip()}  # BEIR qrels: a header line


def logged_commands(out: Path) -> list[tuple[str, list[str]]]:
    """OUT/commands.log: (purpose, argv) of every simlm command the recipe ran, in order."""
    import shlex

    rows = []
    for line in (out / "commands.log").read_text(encoding="utf-8").splitlines():
        purpose, _, command = line.partition("\t")
        rows.append((purpose, shlex.split(command)))
    return rows


def flag_values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == flag]


def check_choices_read_dev_only(out: Path, test_qrels: Path) -> set[str]:
    """Every choice the recipe made (dev figures for early stopping, stage keeping and the final run; fusion and
    interpolation weights) read qrels of queries no model trained on, and never the test split or a test run.
    Returns the kinds of choices seen."""
    commands = logged_commands(out)
    # --final-retrain's models (PURPOSE retrain) train on dev too, after every choice: check_final_retrain
    trained = set().union(*(qids(Path(q)) for purpose, argv in commands if argv[1] == "mine" and purpose != "retrain"
                            for q in flag_values(argv, "--qrels")))  # fmt: skip
    assert trained, "no training data was mined"
    kinds, targets = set(), {}
    for purpose, argv in commands:
        if purpose.startswith("select>"):
            assert argv[1] == "evaluate", argv
            (qrels,) = flag_values(argv, "--qrels")
            (run,) = flag_values(argv, "--run")
            targets[purpose.removeprefix("select>")] = run
            kinds.add("early stopping" if ".epoch-" in run else "stage keeping")
        elif purpose == "tune":
            assert argv[1] == "fuse", argv
            (qrels,) = flag_values(argv, "--tune-on")
            runs = [a for a in argv[2:] if a.endswith(".trec") and a not in flag_values(argv, "-o")]
            assert all(r.endswith(".dev.trec") for r in runs), argv
            kinds.add("fuse --tune-on")
        else:
            assert "--tune-on" not in argv, (purpose, argv)
            continue
        assert Path(qrels).resolve() != test_qrels.resolve(), argv
        assert not qids(Path(qrels)) & trained, f"{argv} reads queries a model trained on"
        assert "test" not in Path(qrels).name and all("test" not in Path(r).name for r in flag_values(argv, "--run"))
    # Each choice's record compares dev figures only: files a select step wrote (or copies of one: the best epoch).
    written = {Path(t).read_text() for t in targets}
    for record in out.rglob("*.stage.json"):
        choice = json.loads(record.read_text())
        assert Path(choice["input_file"]).read_text() in written, record
        assert Path(choice["input_file"]).is_relative_to(out / "dev"), record
    return kinds


def check_dropped_not_built_upon(out: Path) -> list[str]:
    """Once a stage is dropped (its `keep` line in the log), no later command but a test report reads its model or
    runs, and no seed's final run is that stage. Returns the dropped stages."""
    dropped: list[str] = []
    for purpose, argv in logged_commands(out):
        if purpose in ("keep", "judged"):  # judged: a final-run candidate only (the re-ranker alone)
            dropped += [argv[0]] if purpose == "keep" and argv[1] == "dropped" else []
            continue
        outputs = set(flag_values(argv, "-o") + flag_values(argv, "--output"))
        for name in dropped:
            prefixes = (f"{out}/models/{name}/", f"{out}/runs/{name}.")
            used = [a for a in argv if a not in outputs and a.startswith(prefixes)]
            assert not used or purpose == "report", f"{name} was dropped, then built upon: {argv}"
    for final in out.glob("s*/final.stage.json"):
        assert json.loads(final.read_text())["final"] not in dropped, final
    return dropped


def check_precision_reached(out: Path, stderr: str, precision: str) -> None:
    """--precision reached every encode (the index records it), dense search and rerank run of the chain."""
    indexes = [p.parent for p in (out / "idx").rglob("meta.json") if p.parent.name != "bm25"]
    assert len(indexes) >= 4  # zero-shot and an index per epoch of each trained retriever
    backends = {json.loads((index / "meta.json").read_text())["backend"] for index in indexes}
    assert len(backends) == 1, backends  # the recipe passes no --backend: every encode runs auto's
    backend = backends.pop()
    for index in indexes:
        assert json.loads((index / "meta.json").read_text())["precision"] == precision, index
    assert json.loads((out / "idx" / "bm25" / "meta.json").read_text()).get("precision") is None
    lines = [ln.removeprefix("simlm: ") for ln in stderr.splitlines()]
    encodes = [ln for ln in lines if ln.startswith("encoding ") and "(shard " in ln]
    searches = [ln for ln in lines if ln.startswith("encoding queries with ")]
    reranks = [ln for ln in lines if ln.startswith("re-ranking the top ")]
    assert len(encodes) == len(indexes) and len(searches) >= len(indexes) and len(reranks) >= 2, stderr[-3000:]
    assert all(ln.endswith(f"cpu, {precision}, {backend}") for ln in encodes + reranks), encodes + reranks
    passages = f"(the index's passages: {precision}, {backend})"
    assert all(f"cpu, {precision}, {backend} {passages}" in ln for ln in searches), searches


def test_beir_recipe_refuses_a_directory_without_train_qrels(tmp_path: Path) -> None:
    data = make_beir_subset(tmp_path / "subset")
    (data / "qrels" / "train.tsv").unlink()
    done = subprocess.run(["bash", str(ROOT / "recipes" / "beir.sh"), "--data", str(data)], capture_output=True,
                          text=True, cwd=ROOT)  # fmt: skip
    assert done.returncode == 2
    assert "qrels/train.tsv: not found" in done.stderr


def test_split_qrels_is_a_deterministic_partition(tmp_path: Path) -> None:
    fit, dev = tmp_path / "fit.tsv", tmp_path / "dev.tsv"
    for _ in range(2):
        subprocess.run([sys.executable, str(ROOT / "recipes" / "split_qrels.py"), str(SCIFACT / "qrels" / "train.tsv"),
                        "--fit", str(fit), "--dev", str(dev)], check=True, capture_output=True)  # fmt: skip
        first = (fit.read_text(), dev.read_text())
    assert (fit.read_text(), dev.read_text()) == first
    lines = (SCIFACT / "qrels" / "train.tsv").read_text().splitlines()
    fit_lines, dev_lines = fit.read_text().splitlines(), dev.read_text().splitlines()
    assert fit_lines[0] == dev_lines[0] == lines[0]  # the header goes to both
    assert sorted(fit_lines[1:] + dev_lines[1:]) == sorted(lines[1:])
    fit_q, dev_q = {ln.split()[0] for ln in fit_lines[1:]}, {ln.split()[0] for ln in dev_lines[1:]}
    assert not fit_q & dev_q
    assert abs(len(dev_q) / (len(fit_q) + len(dev_q)) - 0.25) < 0.01


def make_graded_collection(directory: Path) -> Path:
    """A collection built unlike SciFact, from SciFact's files: 40 queries, each with many graded positives (its
    SciFact passages grade 2, the 10 passages sharing most of its words grade 1, as on densely judged collections),
    300 passages, and its own dev qrels (24 train, 8 dev, 8 test queries)."""
    judged: dict[str, list[str]] = {}
    for line in (SCIFACT / "qrels" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        qid, docid, _ = line.split("\t")
        judged.setdefault(qid, []).append(docid)
    qids = sorted(judged)[:40]
    corpus = [json.loads(ln) for ln in (SCIFACT / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    wanted = {d for q in qids for d in judged[q]}
    docs = [d for d in corpus if d["_id"] in wanted] + [d for d in corpus if d["_id"] not in wanted][
        : 300 - len(wanted)
    ]
    queries = {q["_id"]: q for q in map(json.loads, (SCIFACT / "queries.jsonl").read_text().splitlines())}
    words = {d["_id"]: set(re.findall(r"[a-z]{4,}", (d["title"] + " " + d["text"]).lower())) for d in docs}
    qrels = {}
    for q in qids:
        asked = set(re.findall(r"[a-z]{4,}", queries[q]["text"].lower()))
        overlap = sorted((d for d in words if d not in judged[q]), key=lambda d: (-len(asked & words[d]), d))[:10]
        qrels[q] = [(d, 2) for d in judged[q]] + [(d, 1) for d in overlap]
    (directory / "qrels").mkdir(parents=True)
    (directory / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    (directory / "queries.jsonl").write_text("".join(json.dumps(queries[q]) + "\n" for q in qids), encoding="utf-8")
    for name, part in (("train", qids[:24]), ("dev", qids[24:32]), ("test", qids[32:])):
        rows = [f"{q}\t{d}\t{g}" for q in part for d, g in qrels[q]]
        (directory / "qrels" / f"{name}.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n")
    return directory


def test_a_grid_is_chosen_on_dev_and_a_stage_worse_than_its_input_is_not_built_upon(tmp_path: Path) -> None:
    """One recipe run for two behaviours (each run is minutes of CLI processes; they were two tests, ~6 min of CI).

    The grid: --lr and --rank-range given lists, Retriever1 trains once per cell, each early-stopped on dev; the best
    cell on dev becomes Retriever1, and Retriever2 trains at its learning rate on negatives from its rank range.
    Keeping: every cell's learning rate wrecks the model (0.5 and 1), so the chosen Retriever1 scores below zero-shot
    on dev; it is reported, marked dropped, and Retriever2 starts from the initial model with zero-shot's negatives.
    Every choice reads the collection's own dev qrels only. One epoch per cell: early stopping over epochs is
    test_beir_recipe_on_another_dataset's, and each more epoch is 4 CLI calls per cell."""
    data = make_graded_collection(tmp_path / "graded")
    out = tmp_path / "out"
    run_recipe("beir.sh", out, "--data", data, "--lr", "1 0.5", "--rank-range", "1:200 4:200", "--epochs", "1",
               "--stop-after", "retriever2", "--seeds", "7")  # fmt: skip
    grid = json.loads((out / "s7" / "retriever1.grid.json").read_text())
    cells = {(c["lr"], c["rank_range"]): c for c in grid["cells"]}
    assert set(cells) == {("1", "1:200"), ("1", "4:200"), ("0.5", "1:200"), ("0.5", "4:200")}
    best = max(grid["cells"], key=lambda c: c["dev"])
    assert grid["chosen"] == best["name"], grid
    for cell in grid["cells"]:  # each cell's dev figure is its best epoch's, the one early stopping kept
        assert cell["dev"] == json.loads((out / "dev" / f"{cell['name']}.json").read_text())["ndcg@10"]
    assert json.loads((out / "dev" / "s7" / "retriever1.json").read_text())["ndcg@10"] == best["dev"]
    choice = json.loads((out / "s7" / "retriever1.stage.json").read_text())
    assert (choice["lr"], choice["rank_range"]) == (best["lr"], best["rank_range"]), choice
    assert choice["kept"] is False and choice["input"] == "zeroshot" and choice["dev"] < choice["input_dev"], choice
    assert "s7/retriever1" in check_dropped_not_built_upon(out)

    commands = logged_commands(out)
    trained = [argv for _, argv in commands if argv[1] == "train"]
    assert sorted(flag_values(argv, "--lr")[0] for argv in trained[:4]) == ["0.5", "0.5", "1", "1"]
    mined = {flag_values(argv, "--output")[0]: argv for _, argv in commands if argv[1] == "mine"}
    assert flag_values(mined[str(out / "train" / "bm25.ranks1-200.jsonl")], "--rank-range") == ["1:200"]
    assert flag_values(mined[str(out / "train" / "bm25.ranks4-200.jsonl")], "--rank-range") == ["4:200"]
    r2_negatives = mined[str(out / "train" / "s7" / "retriever2.jsonl")]
    assert flag_values(r2_negatives, "--rank-range") == [best["rank_range"]]
    assert flag_values(r2_negatives, "--run") == [str(out / "runs" / "zeroshot.fit.trec")]
    (r2,) = [argv for argv in trained if str(out / "models/s7/retriever2") in argv]
    assert flag_values(r2, "--lr") == [best["lr"]]
    assert flag_values(r2, "--model") == ["sentence-transformers/all-MiniLM-L6-v2"]

    # Every model trained on all of the collection's train queries; every choice read its dev qrels.
    assert {q for _, argv in commands if argv[1] == "mine" for q in flag_values(argv, "--qrels")} == {
        str(data / "qrels" / "train.tsv")
    }
    assert not (out / "qrels" / "fit.tsv").exists()
    check_choices_read_dev_only(out, data / "qrels" / "test.tsv")
    assert json.loads((out / "s7" / "final.stage.json").read_text())["final"] != "s7/retriever1"
    rows = {row["stage"]: row for row in json.loads((out / "results.json").read_text())["rows"]}
    assert rows["Retriever1"]["kept"] == 0 and rows["Retriever1"]["ndcg@10"] is not None  # reported, not kept
