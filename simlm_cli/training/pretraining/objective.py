"""The base class of pretraining objectives and the building blocks they share.

An objective is a `torch.nn.Module` holding every trainable part (encoder with its MLM head, decoder, heads,
generator). `forward(batch, rng)` returns a `StepOutput`; the trainer owns everything else.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from simlm_cli.errors import SimlmError
from simlm_cli.io.json_input import read_json
from simlm_cli.model_card import PRETRAINED_CARD, CardKind
from simlm_cli.models.loading import load_pretrained
from simlm_cli.models.settings import resolve_model_path
from simlm_cli.training.checkpoints import load_state, save_state
from simlm_cli.training.pretraining.masking import WordMasker
from simlm_cli.training.pretraining.registry import Option
from simlm_cli.training.step import StepOutput

EXTRAS_DIR = "objective"  # beside the encoder in the output directory: decoder, heads, generator


def load_masked_lm(model_path: str, log: Callable[[str], None], require_head: bool = False) -> nn.Module:
    """An AutoModelForMaskedLM from safetensors weights; a missing MLM head is initialised, tied, and logged (or,
    with `require_head`, an error: a generator with a random head would only sample noise)."""
    from transformers import AutoModelForMaskedLM

    model, info = load_pretrained(model_path, AutoModelForMaskedLM, " as a masked LM", output_loading_info=True)
    missing = [k for k in info.get("missing_keys", []) if not k.startswith(model.base_model_prefix + ".")]
    if missing and require_head:
        raise SimlmError(
            "no MLM head in the checkpoint; fit one first with `simlm pretrain --objective mlm --train-only head`"
        )
    if missing:
        model.tie_weights()
        log(f"{model_path}: no MLM head in the checkpoint; initialised one tied to the input embeddings")
    return model


def mlm_head(model: nn.Module) -> nn.Module:
    """The module from the base model's last hidden states to vocabulary logits.

    BERT's `cls` and RoBERTa's `lm_head` hold the whole head. ELECTRA's generator splits it in two: a transform
    to the embedding size (`generator_predictions`: dense, GELU, LayerNorm), then `generator_lm_head`; the
    second alone would be applied to the wrong width (electra-base-generator: hidden 256, embeddings 768).
    """
    transform = getattr(model, "generator_predictions", None)
    projection = getattr(model, "generator_lm_head", None)
    if isinstance(transform, nn.Module) and isinstance(projection, nn.Module):
        return nn.Sequential(transform, projection)
    for name in ("cls", "lm_head"):
        head = getattr(model, name, None)
        if isinstance(head, nn.Module):
            return head
    raise SimlmError(f"{type(model).__name__}: no MLM head found (expected a BERT/RoBERTa/ELECTRA-style model)")


def encoder_layers(base: nn.Module) -> nn.ModuleList:
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise SimlmError(f"{type(base).__name__}: expected a BERT-style encoder with encoder.layer")
    return layers


def bidirectional_mask(config: Any, embeddings: torch.Tensor, attention_mask: torch.Tensor) -> Any:
    """The attention mask format the model's own layers expect (sdpa, eager ...).

    transformers 5 builds it with `masking_utils.create_bidirectional_mask`, which 4.x lacks (4.57 is what pip
    picks beside optimum). 4.x's BERT-style layers, eager and sdpa alike, take an additive float mask
    [batch, 1, query, key]: 0 where a key may be attended to, the dtype's minimum where it is padding."""
    try:
        from transformers.masking_utils import create_bidirectional_mask
    except ImportError:
        dtype = embeddings.dtype
        keys = attention_mask[:, None, None, :].to(dtype)
        additive = (1.0 - keys) * torch.finfo(dtype).min
        return additive.expand(-1, 1, embeddings.shape[1], -1)
    return create_bidirectional_mask(config=config, inputs_embeds=embeddings, attention_mask=attention_mask)


def freeze_unshared(module: nn.Module, keep: nn.Module) -> None:
    """Stop training `module`'s parameters except those it shares with `keep` (e.g. tied embeddings)."""
    shared = {id(p) for p in keep.parameters()}
    for p in module.parameters():
        if id(p) not in shared:
            p.requires_grad_(False)


def small_generator_config(encoder_config: Any, vocab_size: int) -> Any:
    """A BERT a quarter of the encoder's width (at least 32) and half its depth, on the same vocabulary."""
    from transformers import BertConfig

    hidden = max(32, encoder_config.hidden_size // 4)
    heads = max(1, encoder_config.num_attention_heads // 4)
    while hidden % heads:
        heads -= 1
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=max(1, encoder_config.num_hidden_layers // 2),
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        max_position_embeddings=encoder_config.max_position_embeddings,
        type_vocab_size=getattr(encoder_config, "type_vocab_size", 2),
        pad_token_id=getattr(encoder_config, "pad_token_id", 0),
    )


class Objective(nn.Module):
    """Subclass, set `name`, `summary`, `options` and `api_version`, build parts in `__init__`, implement `forward`.
    Plugins import it from `simlm_cli.api`, the public API."""

    name: ClassVar[str] = ""
    api_version: ClassVar[str] = ""  # the plugin API the subclass was written for, e.g. "1.0"; checked at load
    summary: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()
    find_unused_parameters: ClassVar[bool] = False
    card_kind: ClassVar[CardKind] = PRETRAINED_CARD  # how the model card presents the encoder it trains

    def __init__(self, model_path: str, tokenizer: Any, opts: dict[str, Any], log: Callable[[str], None] = print):
        super().__init__()
        self.tokenizer = tokenizer
        self.opts = dict(opts)
        self.model_path = model_path
        self.log = log
        self.masker = WordMasker(tokenizer)
        self.mlm = load_masked_lm(model_path, log)
        self.heads_only = False  # set by train_only_heads()
        if self.mlm.config.vocab_size < len(tokenizer):
            raise SimlmError(f"{model_path}: the tokenizer has more tokens than the model's vocabulary")

    # -- options --------------------------------------------------------------------------------------------
    @classmethod
    def validate(cls, values: dict[str, Any]) -> None:
        """Raise SimlmError on bad option values, before any model is loaded. The base checks every *-rate lies in
        (0, 1), and that a decoder's masks can hold the encoder's (nested: decoder rate >= encoder rate)."""
        for key, value in values.items():
            if key.endswith("_rate") and not 0.0 < float(value) < 1.0:
                raise SimlmError(f"--{key.replace('_', '-')} {value}: expected a rate in (0, 1)")
        encoder_rate, decoder_rate = values.get("encoder_mask_rate"), values.get("decoder_mask_rate")
        if encoder_rate is not None and decoder_rate is not None and decoder_rate < encoder_rate:
            raise SimlmError(
                f"--decoder-mask-rate {decoder_rate} < --encoder-mask-rate {encoder_rate}: the decoder's masked "
                "positions are a superset of the encoder's"
            )

    # -- shared pieces --------------------------------------------------------------------------------------
    @property
    def head(self) -> nn.Module:
        return mlm_head(self.mlm)

    @property
    def encoder(self) -> nn.Module:
        return self.mlm.base_model

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any) -> Any:
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    def copy_last_layers(self, count: int, option: str = "decoder-layers") -> nn.ModuleList:
        """Copies of the encoder's last `count` layers (SimLM's decoder starts as them, as in the authors' code);
        `option` names the flag that asked, for the error."""
        layers = encoder_layers(self.encoder)
        if not 1 <= count <= len(layers):
            raise SimlmError(f"--{option} {count}: the encoder has {len(layers)} layers")
        return nn.ModuleList(copy.deepcopy(layer) for layer in layers[-count:])

    def fresh_layers(self, count: int, option: str) -> nn.ModuleList:
        """`count` new layers shaped like the encoder's, initialised as BERT initialises a model (normal(0,
        initializer_range) weights, zero biases, unit LayerNorms): what Condenser's head starts from."""
        if count < 1:
            raise SimlmError(f"--{option} {count}: expected at least 1")
        last = encoder_layers(self.encoder)[-1]
        layers = nn.ModuleList(copy.deepcopy(last) for _ in range(count))
        std = float(getattr(self.mlm.config, "initializer_range", 0.02))
        with torch.no_grad():
            for module in layers.modules():
                if isinstance(module, nn.Linear):
                    module.weight.normal_(0.0, std)
                    if module.bias is not None:
                        module.bias.zero_()
                elif isinstance(module, nn.LayerNorm):
                    module.weight.fill_(1.0)
                    module.bias.zero_()
                elif isinstance(module, nn.Embedding):  # e.g. relative position embeddings inside a layer
                    module.weight.normal_(0.0, std)
        return layers

    def run_layers(
        self, layers: nn.ModuleList, first: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """Embed `input_ids` with the encoder's embeddings, put `first` at position 0, run `layers`."""
        embedded = self.encoder.embeddings(input_ids=input_ids)
        project = getattr(self.encoder, "embeddings_project", None)  # ELECTRA: embedding size -> hidden size
        if isinstance(project, nn.Module):
            embedded = project(embedded)
        hidden = torch.cat([first.unsqueeze(1).to(embedded.dtype), embedded[:, 1:]], dim=1)
        return self.run_stack(layers, hidden, attention_mask)

    def run_stack(self, layers: nn.ModuleList, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = bidirectional_mask(self.mlm.config, hidden, attention_mask)
        for layer in layers:
            out = layer(hidden, attention_mask=mask)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    def mlm_loss(self, hidden: torch.Tensor, labels: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the tied MLM head against `labels` at the positions `where` (the head runs only there)."""
        selected = hidden[where]
        if selected.shape[0] == 0:
            return hidden.sum() * 0.0
        logits = self.head(selected).float()
        return F.cross_entropy(logits, labels[where])

    # -- --train-only head ----------------------------------------------------------------------------------
    def prediction_heads(self) -> list[nn.Module]:
        """The modules that turn last hidden states into this objective's predictions: what `--train-only head`
        trains. Default: the MLM head (its weights tied to the input embeddings stay frozen with the encoder)."""
        return [self.head]

    def train_only_heads(self) -> None:
        """Freeze everything but `prediction_heads()` (encoder, decoder, generator included): they leave the
        optimizer, and run without dropout, so the head is fitted on the features the encoder will really give."""
        frozen = {id(p) for p in self.encoder.parameters()}  # e.g. BERT's decoder weight, tied to the embeddings
        keep = {id(p) for head in self.prediction_heads() for p in head.parameters() if id(p) not in frozen}
        for param in self.parameters():
            param.requires_grad_(id(param) in keep)
        if not keep:
            raise SimlmError(f"--train-only head: objective {self.name!r} has no head parameters to train")
        generator = getattr(self, "generator", None)
        if isinstance(generator, Generator):
            generator.trainable = False  # no generator loss either: it would train nothing
        self.heads_only = True
        self.train(self.training)
        count = sum(p.numel() for p in self.parameters() if p.requires_grad)
        self.log(f"--train-only head: {count:,} head parameters train; the encoder and every other part are frozen")

    def train(self, mode: bool = True) -> Objective:
        super().train(mode)
        if self.heads_only and mode:
            super().train(False)  # frozen parts: no dropout
            for head in self.prediction_heads():
                head.train(True)
        return self

    # -- saving ---------------------------------------------------------------------------------------------
    def extra_config(self) -> dict[str, Any]:
        """What is needed, beyond the options, to rebuild the non-encoder parts (e.g. a generator's config)."""
        return {}

    def save_pretrained(self, directory: Path) -> None:
        """The encoder (HF format, with its MLM head and the tokenizer) and the other parts in `objective/`."""
        directory = Path(directory)
        self.mlm.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        extras = directory / EXTRAS_DIR
        extras.mkdir(parents=True, exist_ok=True)
        save_state(self, extras / "model.safetensors", skip_prefix="mlm.")
        meta = {"objective": self.name, "options": self.opts, "extra": self.extra_config()}
        (extras / "objective.json").write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")

    def load_extras(self, model_dir: Path) -> bool:
        """Continue pretraining: restore the decoder/heads/generator saved by a previous run of this objective."""
        meta_path = Path(model_dir) / EXTRAS_DIR / "objective.json"
        if not meta_path.is_file():
            return False
        meta = read_json(meta_path)
        if meta.get("objective") != self.name:
            return False
        load_state(self, meta_path.parent / "model.safetensors", only_prefix_absent="mlm.")
        self.log(f"restored the {self.name} decoder/heads from {meta_path.parent}")
        return True

    def forward(self, batch: dict[str, torch.Tensor], rng: torch.Generator) -> StepOutput:  # pragma: no cover
        raise NotImplementedError


def load_generator(spec: str, log: Callable[[str], None]) -> nn.Module:
    """`--generator`: a masked LM from a directory (e.g. `simlm pretrain --train-only head`'s output) or a hub name;
    a path that names no directory is said to be one, not sent to the hub as a name."""
    path = Path(spec).expanduser()
    if not path.is_dir() and (path.is_absolute() or spec.startswith((".", "~")) or path.exists()):
        raise SimlmError(f"--generator {spec}: not a directory")
    try:
        return load_masked_lm(resolve_model_path(str(path) if path.is_dir() else spec), log, require_head=True)
    except SimlmError as err:
        raise SimlmError(f"--generator {spec}: {err}") from None


class Generator(nn.Module):
    """ELECTRA/SimLM's generator: fills masked positions with tokens sampled from its MLM distribution.

    `spec` names a pretrained masked LM (frozen unless `trainable`); empty: a small random BERT trained jointly.
    """

    def __init__(
        self, spec: str, tokenizer: Any, encoder_config: Any, trainable: bool, log: Callable[[str], None]
    ) -> None:
        super().__init__()
        self.mask_id = int(tokenizer.mask_token_id)
        self.random_config: dict[str, Any] | None = None
        if spec:
            model = load_generator(spec, log)
            if model.config.vocab_size < len(tokenizer) or model.config.vocab_size != encoder_config.vocab_size:
                raise SimlmError(f"--generator {spec}: its vocabulary differs from the encoder's")
        else:
            from transformers import BertForMaskedLM

            config = small_generator_config(encoder_config, encoder_config.vocab_size)
            model = BertForMaskedLM(config)
            self.random_config = config.to_dict()
            log(
                f"generator: random {config.num_hidden_layers}-layer BERT, hidden {config.hidden_size}, "
                "trained jointly with MLM"
            )
        self.model = model
        self.trainable = trainable or not spec
        if not self.trainable:
            model.requires_grad_(False)
            model.eval()

    def train(self, mode: bool = True) -> Generator:
        super().train(mode and self.trainable)
        return self

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        mask: torch.Tensor,
        rng: torch.Generator,
        with_loss: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`input_ids` is the original; positions in `mask` get [MASK]. Returns (tokens sampled at `mask`, MLM loss:
        None unless the generator trains and `with_loss`)."""
        masked_input = input_ids.masked_fill(mask, self.mask_id)
        learn = self.trainable and with_loss
        with torch.set_grad_enabled(learn and torch.is_grad_enabled()):
            hidden = self.model.base_model(input_ids=masked_input, attention_mask=attention_mask).last_hidden_state
            logits = mlm_head(self.model)(hidden[mask]).float()
            loss = F.cross_entropy(logits, input_ids[mask]) if learn and logits.shape[0] else None
        probs = torch.softmax(logits.detach(), dim=-1)
        sampled = torch.multinomial(probs, 1, generator=rng).squeeze(1) if probs.shape[0] else input_ids.new_zeros((0,))
        return sampled, loss


def nested_replacement(
    masker: Any,
    generator: Generator,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    rates: tuple[float, float],
    rng: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """RLM/RTD corruption (SimLM Sec. 3.1): nested word masks (encoder within decoder), and the replacement
    "performed twice": the generator reads the encoder's masked view and fills the encoder's positions, then reads
    the decoder's masked view and fills the decoder's, each draw independent of the other. Where both inputs are
    masked they may hold different tokens. The generator's MLM loss comes from the encoder's view only, as in the
    authors' code (the decoder's draw runs without gradient). Returns (encoder ids, decoder ids, encoder mask,
    decoder mask, generator loss)."""
    enc_mask, dec_mask = masker.masks(input_ids, attention_mask, list(rates), rng)
    enc_sampled, gen_loss = generator(input_ids, attention_mask, enc_mask, rng)
    dec_sampled, _ = generator(input_ids, attention_mask, dec_mask, rng, with_loss=False)
    enc_ids = input_ids.clone()
    enc_ids[enc_mask] = enc_sampled
    dec_ids = input_ids.clone()
    dec_ids[dec_mask] = dec_sampled
    return enc_ids, dec_ids, enc_mask, dec_mask, gen_loss


def mlm_targets(masker: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Where a loss over every input position (RLM, RTD) has targets: real tokens that are not special ones.

    [CLS], [SEP] (and any other special id) are left out, as in the authors' code (labels -100): otherwise the
    [CLS] bottleneck vector itself would be trained to predict the token "[CLS]"."""
    return masker.maskable(input_ids, attention_mask)


class ReplacedInputs:
    """The corruption of rlm (and of rtd, which keeps it so that the ablation changes only the loss): a generator
    replaces the encoder's and the decoder's inputs separately, each from that input's own masked view. The class
    using it has `masker`, `generator` and `opts` with replacement_options()."""

    masker: Any
    generator: Any
    opts: dict[str, Any]

    def extra_config(self) -> dict[str, Any]:
        return {"generator_config": self.generator.random_config}

    def corrupt(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, rng: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(encoder ids, decoder ids, encoder mask, decoder mask, generator loss)."""
        rates = (self.opts["encoder_mask_rate"], self.opts["decoder_mask_rate"])
        return nested_replacement(self.masker, self.generator, input_ids, attention_mask, rates, rng)


def replacement_options() -> tuple[Option, ...]:
    """The options of the objectives that corrupt both inputs with generator samples (rlm, and rtd, which keeps
    rlm's corruption so that the ablation changes only the loss)."""
    return (
        Option("encoder-mask-rate", float, 0.30, "Share of words replaced in the encoder's input."),
        Option("decoder-mask-rate", float, 0.50, "Share of words replaced in the decoder's input (superset)."),
        Option("decoder-layers", int, 2, "Decoder depth; its layers start as copies of the encoder's last ones."),
        *generator_options(),
    )


def generator_options() -> tuple[Option, ...]:
    return (
        Option(
            "generator",
            str,
            "",
            "Pretrained masked LM (directory or name) sampling the replacements; frozen unless --train-generator. "
            "Default: a small random BERT (1/4 width) trained jointly with MLM (offline; the paper: "
            "google/electra-base-generator, frozen).",
        ),
        Option("train-generator", bool, False, "Also train a --generator given by name or directory (MLM loss)."),
        Option(
            "generator-loss-weight",
            float,
            0.2,
            "Weight of the generator's MLM loss in the total, when it trains (the authors' code: 0.2).",
        ),
    )
