"""The objectives: registry, options, RLM's corruption and bottleneck, every objective's forward/backward, saving."""

from __future__ import annotations

import random

import pytest
import torch

from simlm_cli.errors import SimlmError
from simlm_cli.training.pretraining.objective import mlm_head
from simlm_cli.training.pretraining.registry import load_objective, objective_names, parse_extra_args, resolve_options

from .conftest import batch_of, make_objective, toy_sentence

ALL = ["autoencoder", "condenser", "enc-dec-mlm", "mlm", "rlm", "rtd"]


def _batch(tokenizer, n=8, seed=5):
    rng = random.Random(seed)
    return batch_of(tokenizer, [toy_sentence(rng) for _ in range(n)])


def test_registry_lists_the_builtin_objectives():
    assert set(ALL) <= set(objective_names())
    for name in ALL:
        cls = load_objective(name)
        assert cls.name == name and cls.summary
        for opt in cls.options:
            assert opt.help and opt.type in (int, float, str, bool)


def test_unknown_objective_and_option_are_one_line_errors():
    with pytest.raises(SimlmError, match="did you mean rlm"):
        load_objective("rlx")
    with pytest.raises(SimlmError, match="'mlm' does not take --decoder-mask-rate"):
        resolve_options(load_objective("mlm"), [("decoder-mask-rate", "0.5")])
    with pytest.raises(SimlmError, match="expects float"):
        resolve_options(load_objective("rlm"), [("encoder-mask-rate", "lots")])
    with pytest.raises(SimlmError, match="superset"):
        resolve_options(load_objective("rlm"), [("encoder-mask-rate", "0.6")])
    with pytest.raises(SimlmError, match="rate in"):
        resolve_options(load_objective("mlm"), [("mask-rate", "1.5")])


def test_option_parsing_flags_and_values():
    pairs = parse_extra_args(["--decoder-mask-rate", "0.4", "--train-generator", "--encoder-mask-rate=0.2"])
    values = resolve_options(load_objective("rlm"), pairs)
    assert values["decoder_mask_rate"] == 0.4 and values["encoder_mask_rate"] == 0.2
    assert values["train_generator"] is True and values["decoder_layers"] == 2
    values = resolve_options(load_objective("condenser"), parse_extra_args(["--no-encoder-mlm"]))
    assert values["encoder_mlm"] is False


def test_headless_base_gets_a_tied_head_and_says_so(tiny_headless, tokenizer):
    messages: list[str] = []
    obj = make_objective("mlm", tiny_headless, tokenizer, log=messages.append)
    assert any("no MLM head" in m for m in messages)
    assert obj.head.predictions.decoder.weight is obj.encoder.embeddings.word_embeddings.weight


def _special(tokenizer, ids):
    return torch.isin(ids, torch.tensor(tokenizer.all_special_ids))


@pytest.mark.parametrize("name", ["rlm", "rtd"])
def test_each_input_is_replaced_only_within_its_own_nested_mask(name, tiny_model, tokenizer):
    obj = make_objective(name, tiny_model, tokenizer)
    batch = _batch(tokenizer, 16)
    ids, am = batch["input_ids"], batch["attention_mask"]
    rng = torch.Generator().manual_seed(0)
    for _ in range(10):
        enc_ids, dec_ids, enc_mask, dec_mask, _ = obj.corrupt(ids, am, rng)
        assert not (enc_mask & ~dec_mask).any()  # encoder positions within the decoder's
        assert torch.equal(enc_ids[~enc_mask], ids[~enc_mask]) and torch.equal(dec_ids[~dec_mask], ids[~dec_mask])
        assert not (dec_mask & _special(tokenizer, ids)).any()


@pytest.mark.parametrize("name", ["rlm", "rtd"])
def test_encoder_and_decoder_replacements_are_drawn_independently(name, tiny_model, tokenizer):
    """SimLM replaces twice: at positions both inputs mask, the two samples differ (a shared draw never does)."""
    obj = make_objective(name, tiny_model, tokenizer)
    batch = _batch(tokenizer, 16)
    ids, am = batch["input_ids"], batch["attention_mask"]
    rng = torch.Generator().manual_seed(0)
    shared = differ = 0
    for _ in range(20):
        enc_ids, dec_ids, enc_mask, _, _ = obj.corrupt(ids, am, rng)
        shared += int(enc_mask.sum())
        differ += int((enc_ids[enc_mask] != dec_ids[enc_mask]).sum())
    # The random generator spreads its samples over the 35-token vocabulary: two independent draws agree rarely.
    assert shared > 200 and differ > 0.5 * shared


@pytest.mark.parametrize("name", ["rlm", "rtd"])
def test_each_replacement_is_sampled_from_its_own_masked_view(name, tiny_model, tokenizer, monkeypatch):
    obj = make_objective(name, tiny_model, tokenizer, train_generator=True)
    batch = _batch(tokenizer, 8)
    ids, am = batch["input_ids"], batch["attention_mask"]
    views, calls = [], []
    base = obj.generator.model.base_model
    base_forward = base.forward

    def spy_base(*args, **kwargs):
        views.append(kwargs["input_ids"].clone())
        return base_forward(*args, **kwargs)

    monkeypatch.setattr(base, "forward", spy_base)
    generator_forward = obj.generator.forward

    def spy_generator(input_ids, attention_mask, mask, rng, with_loss=True):
        sampled, loss = generator_forward(input_ids, attention_mask, mask, rng, with_loss=with_loss)
        calls.append((mask.clone(), sampled.clone(), loss))
        return sampled, loss

    monkeypatch.setattr(obj.generator, "forward", spy_generator)
    enc_ids, dec_ids, enc_mask, dec_mask, gen_loss = obj.corrupt(ids, am, torch.Generator().manual_seed(3))
    assert len(calls) == 2 and len(views) == 2
    mask_id = tokenizer.mask_token_id
    assert torch.equal(views[0], ids.masked_fill(enc_mask, mask_id))  # the encoder's own view: its 30%
    assert torch.equal(views[1], ids.masked_fill(dec_mask, mask_id))  # the decoder's own view: its 50%
    (first_mask, enc_sampled, first_loss), (second_mask, dec_sampled, second_loss) = calls
    assert torch.equal(first_mask, enc_mask) and torch.equal(enc_ids[enc_mask], enc_sampled)
    assert torch.equal(second_mask, dec_mask) and torch.equal(dec_ids[dec_mask], dec_sampled)
    # The generator learns from the encoder's view (as the authors' code); the decoder's draw carries no loss.
    assert first_loss is not None and gen_loss is first_loss and second_loss is None


@pytest.mark.parametrize("name", ALL)
def test_no_special_token_is_ever_a_target(name, tiny_model, tokenizer, monkeypatch):
    """[CLS], [SEP], [MASK] and padding are never a prediction target (the authors set them to -100)."""
    import torch.nn.functional as F

    obj = make_objective(name, tiny_model, tokenizer)
    batch = _batch(tokenizer)
    ids = batch["input_ids"]
    special_ids = torch.tensor(tokenizer.all_special_ids)
    targets, positions = [], []
    cross_entropy = F.cross_entropy

    def spy_ce(logits, labels, *args, **kwargs):
        targets.append(labels.clone())
        return cross_entropy(logits, labels, *args, **kwargs)

    monkeypatch.setattr(F, "cross_entropy", spy_ce)
    mlm_loss = obj.mlm_loss

    def spy_mlm(hidden, labels, where):
        assert torch.equal(labels, ids)
        positions.append(where.clone())
        return mlm_loss(hidden, labels, where)

    monkeypatch.setattr(obj, "mlm_loss", spy_mlm)
    if name == "rtd":
        rtd_loss = obj._rtd_loss

        def spy_rtd(head, hidden, replaced, where):
            positions.append(where.clone())
            return rtd_loss(head, hidden, replaced, where)

        monkeypatch.setattr(obj, "_rtd_loss", spy_rtd)
    obj(batch, torch.Generator().manual_seed(0)).loss.backward()
    assert positions and targets or name == "rtd"
    for where in positions:
        assert where.any() and not (where & _special(tokenizer, ids)).any()
        assert not (where & ~batch["attention_mask"].bool()).any()
    for labels in targets:
        assert labels.numel() and not torch.isin(labels, special_ids).any()


def test_rlm_predicts_the_original_token_at_every_ordinary_position(tiny_model, tokenizer, monkeypatch):
    obj = make_objective("rlm", tiny_model, tokenizer)
    batch = _batch(tokenizer)
    seen = []
    original = obj.mlm_loss

    def spy(hidden, labels, where):
        seen.append((labels.clone(), where.clone()))
        return original(hidden, labels, where)

    monkeypatch.setattr(obj, "mlm_loss", spy)
    obj(batch, torch.Generator().manual_seed(0))
    assert len(seen) == 2  # encoder and decoder
    ordinary = batch["attention_mask"].bool() & ~_special(tokenizer, batch["input_ids"])
    for labels, where in seen:
        assert torch.equal(labels, batch["input_ids"])
        assert torch.equal(where, ordinary)


@pytest.mark.parametrize("name", ["rlm", "rtd"])
def test_generator_loss_weight_defaults_to_the_authors_0_2(name, tiny_model, tokenizer):
    obj = make_objective(name, tiny_model, tokenizer)  # the random generator trains jointly
    assert obj.opts["generator_loss_weight"] == 0.2
    out = obj(_batch(tokenizer), torch.Generator().manual_seed(0))
    parts = out.parts
    expected = parts["enc"] + parts["dec"] + 0.2 * parts["gen"]
    assert torch.allclose(out.loss.detach(), expected, atol=1e-5)


def _losses(obj, batch, seed=0):
    with torch.no_grad():
        out = obj(batch, torch.Generator().manual_seed(seed))
    return float(out.parts["enc"]), float(out.parts["dec"])


@pytest.mark.parametrize("name", ["rlm", "enc-dec-mlm", "rtd"])
def test_decoder_sees_the_encoder_only_through_cls(name, tiny_model, tokenizer):
    obj = make_objective(name, tiny_model, tokenizer).eval()
    batch = _batch(tokenizer)
    base_enc, base_dec = _losses(obj, batch)

    def perturb(position):
        def hook(_module, _inputs, output):
            hidden = output.last_hidden_state.clone()
            hidden[:, position] += 3.0 * torch.randn_like(hidden[:, position])
            output.last_hidden_state = hidden
            return output

        return hook

    handle = obj.encoder.register_forward_hook(perturb(slice(1, None)))
    enc, dec = _losses(obj, batch)
    handle.remove()
    assert dec == base_dec  # bit-identical: nothing but [CLS] reaches the decoder
    assert enc != pytest.approx(base_enc, abs=1e-4)
    handle = obj.encoder.register_forward_hook(perturb(0))
    _, dec = _losses(obj, batch)
    handle.remove()
    assert dec != base_dec


def test_decoder_starts_as_a_copy_of_the_last_encoder_layers(tiny_model, tokenizer):
    obj = make_objective("rlm", tiny_model, tokenizer)
    layers = obj.encoder.encoder.layer
    assert len(obj.decoder) == 2
    for dec, enc in zip(obj.decoder, layers[-2:]):
        for (_, a), (_, b) in zip(dec.named_parameters(), enc.named_parameters()):
            assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()


def test_condenser_head_starts_fresh_unless_asked_to_copy(tiny_model, tokenizer):
    last = make_objective("mlm", tiny_model, tokenizer).encoder.encoder.layer[-1]
    obj = make_objective("condenser", tiny_model, tokenizer)
    assert obj.opts["head_init"] == "random" and len(obj.condenser_head) == 2
    std = obj.mlm.config.initializer_range
    for layer in obj.condenser_head:
        for (name, new), (_, old) in zip(layer.named_parameters(), last.named_parameters()):
            new = new.detach()
            if "LayerNorm.weight" in name:
                assert torch.equal(new, torch.ones_like(new))
            elif name.endswith("bias"):
                assert torch.equal(new, torch.zeros_like(new))
            else:  # a weight matrix drawn anew, not the encoder's
                assert not torch.equal(new, old) and abs(float(new.std()) - std) < 0.5 * std, name
    assert not torch.equal(obj.condenser_head[0].output.dense.weight, obj.condenser_head[1].output.dense.weight)
    copied = make_objective("condenser", tiny_model, tokenizer, head_init="copy")
    for head, enc in zip(copied.condenser_head, copied.encoder.encoder.layer[-2:]):
        for a, b in zip(head.parameters(), enc.parameters()):
            assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()
    with pytest.raises(SimlmError, match="--head-init 'clone': expected one of random, copy"):
        resolve_options(load_objective("condenser"), [("head-init", "clone")])
    with pytest.raises(SimlmError, match="--head-layers 0"):
        make_objective("condenser", tiny_model, tokenizer, head_layers=0)


@pytest.mark.parametrize("name", ALL)
def test_every_objective_trains_every_trainable_parameter(name, tiny_model, tokenizer):
    obj = make_objective(name, tiny_model, tokenizer)
    out = obj(_batch(tokenizer), torch.Generator().manual_seed(0))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    # DDP (find_unused_parameters=False) needs a gradient on every trainable parameter.
    missing = [n for n, p in obj.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing


def test_frozen_pretrained_generator(tiny_model, tokenizer):
    obj = make_objective("rlm", tiny_model, tokenizer, generator=str(tiny_model))
    assert not any(p.requires_grad for p in obj.generator.parameters())
    out = obj(_batch(tokenizer), torch.Generator().manual_seed(0))
    assert "gen" not in out.parts and 0.0 <= float(out.replace_ratio) <= 1.0
    obj = make_objective("rlm", tiny_model, tokenizer, generator=str(tiny_model), train_generator=True)
    assert "gen" in obj(_batch(tokenizer), torch.Generator().manual_seed(0)).parts


def test_save_and_continue(tiny_model, tokenizer, tmp_path):
    from transformers import AutoModel

    obj = make_objective("rlm", tiny_model, tokenizer)
    with torch.no_grad():
        obj.decoder[0].output.dense.weight.add_(1.0)
    obj.save_pretrained(tmp_path / "out")
    assert (tmp_path / "out" / "objective" / "model.safetensors").is_file()
    encoder = AutoModel.from_pretrained(tmp_path / "out")
    assert torch.allclose(encoder.embeddings.word_embeddings.weight, obj.encoder.embeddings.word_embeddings.weight)
    again = make_objective("rlm", tmp_path / "out", tokenizer)
    assert again.load_extras(tmp_path / "out")
    assert torch.equal(again.decoder[0].output.dense.weight, obj.decoder[0].output.dense.weight)
    for (n, a), (_, b) in zip(again.generator.named_parameters(), obj.generator.named_parameters()):
        assert torch.equal(a, b), n


def _tiny_electra(directory, tokenizer, embedding_size: int = 16):
    """An ELECTRA masked LM whose embedding size differs from its hidden size, like electra-base-generator."""
    from transformers import ElectraConfig, ElectraForMaskedLM

    config = ElectraConfig(
        vocab_size=len(tokenizer), embedding_size=embedding_size, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
    )  # fmt: skip
    torch.manual_seed(0)
    ElectraForMaskedLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def test_electra_generator_samples_from_its_full_head(tiny_model, tokenizer, tmp_path):
    """ELECTRA's generator head is a transform (hidden -> embedding size) and then the LM projection."""
    from transformers import AutoModelForMaskedLM

    electra = _tiny_electra(tmp_path / "electra-generator", tokenizer)
    obj = make_objective("rlm", tiny_model, tokenizer, generator=str(electra))
    batch = _batch(tokenizer)
    out = obj(batch, torch.Generator().manual_seed(0))
    assert torch.isfinite(out.loss) and "gen" not in out.parts
    # The head simlm samples from gives the same logits as the model's own forward pass.
    reference = AutoModelForMaskedLM.from_pretrained(electra).eval()
    with torch.no_grad():
        hidden = obj.generator.model.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        ours = mlm_head(obj.generator.model)(hidden.last_hidden_state)
        theirs = reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert torch.allclose(ours, theirs, atol=1e-5)


@pytest.mark.parametrize("name", ["rlm", "condenser"])
def test_electra_encoder_with_projected_embeddings(name, tokenizer, tmp_path):
    """An ELECTRA encoder (embeddings projected to the hidden size) pretrains through the decoder/head path."""
    electra = _tiny_electra(tmp_path / "electra", tokenizer)
    obj = make_objective(name, electra, tokenizer)
    out = obj(_batch(tokenizer), torch.Generator().manual_seed(0))
    assert torch.isfinite(out.loss)
    out.loss.backward()
