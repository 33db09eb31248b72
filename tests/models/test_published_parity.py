"""The paper's defaults encode as the published SimLM checkpoints do (issue 23, item 2).

The model card of intfloat/simlm-base-msmarco-finetuned encodes with this code (re-implemented below with plain
transformers calls, as the card writes it): a query is `tokenizer(query, max_length=32, padding=True,
truncation=True)`, a passage `tokenizer(title, text_pair=passage, max_length=144, padding=True, truncation=True)`
with `title='-'` when there is none, the vector is the last hidden state's [CLS] row, L2-normalised. The authors'
training and encoding code (microsoft/unilm, simlm/src/loaders/biencoder_dataloader.py, inference/encode_main.py)
tokenizes the same way; MS MARCO's titles come from a title file whose untitled passages read "-". simlm's `pair`
format used to tokenize an untitled passage as its text alone, an input these checkpoints never saw.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from simlm_cli.device import Precision, resolve_runtime
from simlm_cli.io.corpus import Passage
from simlm_cli.models.biencoder import BiEncoder
from simlm_cli.models.settings import resolve_settings

LONG_TEXT = " ".join(["proteins fold into a stable shape that decides their function in the cell"] * 14)  # > 144
LONG_TITLE = " ".join(["misfolded proteins and disease"] * 20)  # > 72 tokens: the pair is cut on both sides
PASSAGES = [
    Passage("titled", "Protein folding", "Proteins fold into a stable shape that decides their function.", 0),
    Passage("untitled", "", "A gene is a piece of DNA that holds the code for one protein.", 1),
    Passage("long", "Chaperone proteins", LONG_TEXT, 2),
    Passage("long-untitled", "", LONG_TEXT, 3),
    Passage("long-title", LONG_TITLE, LONG_TEXT, 4),
]
QUERIES = ["how do proteins fold", "what is a gene", " ".join(["why do stars shine"] * 12)]  # the last > 32 tokens


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_bert_dir) -> Path:
    """A tiny BERT like the suite's, with room for the paper's 144 passage tokens, saved as a plain HF directory
    (no sentence-transformers or simlm configuration: the paper's defaults apply)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    directory = tmp_path_factory.mktemp("simlm-like")
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    tokenizer.save_pretrained(directory)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=160, initializer_range=0.3)  # fmt: skip
    torch.manual_seed(1)
    BertModel(config).save_pretrained(directory)
    return directory


# -- the model card's code --------------------------------------------------------------------------------------
def _l2_normalize(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, p=2, dim=-1)


def _encode_query(tokenizer, query: str):
    return tokenizer(query, max_length=32, padding=True, truncation=True, return_tensors="pt")


def _encode_passage(tokenizer, passage: str, title: str = "-"):
    return tokenizer(title, text_pair=passage, max_length=144, padding=True, truncation=True, return_tensors="pt")


def _reference(directory: Path, batches: list) -> np.ndarray:
    from transformers import AutoModel

    model = AutoModel.from_pretrained(directory).eval()
    with torch.no_grad():
        return np.stack([_l2_normalize(model(**batch).last_hidden_state[0, 0, :]).numpy() for batch in batches])


# -- the tests ----------------------------------------------------------------------------------------------------
def test_the_paper_defaults_are_the_published_encoding(checkpoint):
    settings = resolve_settings(str(checkpoint))
    assert settings.source == "paper defaults"
    assert (settings.pooling, settings.normalize, settings.passage_format) == ("cls", True, "pair")
    assert (settings.query_max_length, settings.passage_max_length) == (32, 144)


def test_passages_titled_and_untitled_encode_as_the_model_card_does(checkpoint):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    card_inputs = [
        _encode_passage(tokenizer, p.text, title=p.title) if p.title else _encode_passage(tokenizer, p.text)
        for p in PASSAGES
    ]
    assert [len(b["input_ids"][0]) for b in card_inputs][2:] == [144, 144, 144]  # the long ones are cut
    encoder = BiEncoder.load(resolve_settings(str(checkpoint)), resolve_runtime("cpu", Precision.fp32))
    tokens = encoder.tokenize_passages(PASSAGES)
    assert tokens["input_ids"] == [b["input_ids"][0].tolist() for b in card_inputs]  # the very same token ids
    assert tokens["token_type_ids"] == [b["token_type_ids"][0].tolist() for b in card_inputs]
    # batched with padding by simlm, one at a time by the card: equal up to float summation order
    np.testing.assert_allclose(encoder.encode_passages(PASSAGES), _reference(checkpoint, card_inputs), atol=1e-5)


def test_queries_encode_as_the_model_card_does(checkpoint):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    card_inputs = [_encode_query(tokenizer, q) for q in QUERIES]
    assert len(card_inputs[-1]["input_ids"][0]) == 32
    encoder = BiEncoder.load(resolve_settings(str(checkpoint)), resolve_runtime("cpu", Precision.fp32))
    assert encoder.tokenize_queries(QUERIES)["input_ids"] == [b["input_ids"][0].tolist() for b in card_inputs]
    np.testing.assert_allclose(encoder.encode_queries(QUERIES), _reference(checkpoint, card_inputs), atol=1e-5)
