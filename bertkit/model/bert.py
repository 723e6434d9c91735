"""The BERT encoder (Devlin et al. 2018), in plain PyTorch.

    ids -> BertEmbeddings (token + segment + learned position, LayerNorm, dropout)
        -> BertLayer x N  (self-attention -> add & LayerNorm -> GELU feed-forward -> add & LayerNorm)
        -> last_hidden_state, and BertPooler (dense + tanh on [CLS]) -> pooler_output

Module names are HuggingFace's (`embeddings.word_embeddings`, `encoder.layer.3.attention.self.query`, ...), so a
HF state dict loads 1:1. Two ways through the encoder give the same numbers on real tokens:
  * padded (the reference, what HF does): every layer works on [batch, seq, hidden];
  * unpadded (`unpad=True`): the token-wise layers (projections, feed-forward, LayerNorms) run on the real tokens
    only, [tokens, hidden], and only attention sees the padded [batch, heads, seq, head_dim] layout. On batches of
    mixed lengths this skips the work HF spends on padding. Padding positions of the output are zeros.

Shapes: B batch, S sequence (padded), T real tokens of the batch (sum of lengths), H hidden, N heads, D head_dim
(H = N * D), I intermediate. Token-wise layers take [B, S, H] (padded) or [T, H] (unpadded); attention always
works on [B, N, S, D].
"""
from __future__ import annotations

import contextlib
import contextvars
import os
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from bertkit.errors import UserError

from .config import ACTIVATIONS, BertConfig
from .outputs import BaseModelOutputWithPooling, ModelOutput
from .size import check_model_size


def activation(name: str) -> nn.Module:
    """HF's hidden_act names -> modules (the table is config.ACTIVATIONS, which BertConfig validates against)."""
    class_name, kwargs = ACTIVATIONS[name]
    return getattr(nn, class_name)(**kwargs)


def attention_bias(attention_mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """[batch, seq] 1/0 mask -> additive bias [batch, 1, 1, seq] (0 keep, dtype-min drop), or None if nothing is
    masked. A large negative number rather than -inf keeps an all-padding row finite, as HF does."""
    # the shortcut reads the mask's values: under torch.compile the bias is always built, so the graph stays one
    if attention_mask is None or (not torch.compiler.is_compiling() and bool(attention_mask.all())):
        return None
    keep = attention_mask[:, None, None, :].to(torch.bool)
    return torch.zeros(keep.shape, dtype=dtype, device=keep.device).masked_fill(~keep, torch.finfo(dtype).min)


# measured on MiniLM, batch 32, 2 CPU cores: 5% padding is about break-even, 10% gives 1.1x, 33% 1.5x (fp32)
UNPAD_MIN_PADDING = 0.05
_PADDING_UNUSED: contextvars.ContextVar[bool] = contextvars.ContextVar("padding_outputs_unused", default=False)


@contextlib.contextmanager
def padding_outputs_unused(unused: bool = True) -> Iterator[None]:
    """Within it, the encoder's outputs at padding positions are read by nobody (a pipeline, an evaluation loop
    that cuts each row to its length, a training step whose loss ignores padding), so `unpad=None` may skip them."""
    token = _PADDING_UNUSED.set(unused)
    try:
        yield
    finally:
        _PADDING_UNUSED.reset(token)


class Unpadding:
    """Where the real tokens of a padded [batch, seq] batch sit: `unpad` gathers them into [tokens, ...],
    `pad` scatters [tokens, ...] back into [batch, seq, ...] with zeros on the padding."""

    def __init__(self, attention_mask: Tensor) -> None:
        self.batch_size, self.seq_len = attention_mask.shape
        self.index = attention_mask.reshape(-1).nonzero().squeeze(1)  # flat positions of real tokens

    def unpad(self, x: Tensor) -> Tensor:  # [B, S, ...] -> [T, ...]
        return x.reshape(self.batch_size * self.seq_len, *x.shape[2:]).index_select(0, self.index)

    def pad(self, x: Tensor) -> Tensor:  # [T, ...] -> [B, S, ...], zeros on padding
        out = x.new_zeros(self.batch_size * self.seq_len, *x.shape[1:])  # [B*S, ...]
        out.index_copy_(0, self.index, x)
        return out.view(self.batch_size, self.seq_len, *x.shape[1:])


class BertEmbeddings(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        input_ids: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
    ) -> Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        batch_size, seq_len = inputs_embeds.shape[:2]
        device = inputs_embeds.device
        if position_ids is None:
            position_ids = torch.arange(seq_len, device=device).expand(batch_size, seq_len)
        if token_type_ids is None:
            token_type_ids = torch.zeros(batch_size, seq_len, dtype=torch.long, device=device)
        x = inputs_embeds + self.token_type_embeddings(token_type_ids) + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    """Multi-head scaled dot-product attention. Through SDPA normally; when the attention maps are wanted it
    computes softmax(QK^T / sqrt(d) + mask) explicitly so they can be returned."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout_prob = config.attention_probs_dropout_prob

    def forward(
        self, x: Tensor, bias: Tensor | None, unpadding: Unpadding | None = None, output_attentions: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        q, k, v = self.query(x), self.key(x), self.value(x)  # each [B, S, H] (or [T, H] unpadded)
        if unpadding is not None:  # attention needs the sequences back
            q, k, v = unpadding.pad(torch.cat([q, k, v], dim=-1)).chunk(3, dim=-1)  # [T, 3H] -> 3 x [B, S, H]
        batch_size, seq_len, hidden = q.shape
        q, k, v = (t.view(batch_size, seq_len, self.num_heads, self.head_dim).transpose(1, 2)
                   for t in (q, k, v))  # each [B, N, S, D]
        dropout_p = self.dropout_prob if self.training else 0.0

        probs = None
        if output_attentions:
            scores = q @ k.transpose(-1, -2) * self.head_dim**-0.5  # [B, N, S, S]
            if bias is not None:
                scores = scores + bias  # bias [B, 1, 1, S]: padding keys get dtype-min
            probs = F.dropout(scores.softmax(dim=-1), p=dropout_p, training=self.training)  # [B, N, S, S]
            context = probs @ v  # [B, N, S, D]
        else:
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p)  # [B, N, S, D]

        context = context.transpose(1, 2).reshape(batch_size, seq_len, hidden)  # [B, S, H]
        if unpadding is not None:
            context = unpadding.unpad(context)  # [T, H]
        return context, probs


class BertResidualOutput(nn.Module):
    """dense -> dropout -> add the residual -> LayerNorm (post-LN). HF calls it BertSelfOutput after attention
    and BertOutput after the feed-forward; it is one idea, so one class."""

    def __init__(self, in_features: int, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(in_features, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertResidualOutput(config.hidden_size, config)

    def forward(
        self, x: Tensor, bias: Tensor | None, unpadding: Unpadding | None = None, output_attentions: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        context, probs = self.self(x, bias, unpadding, output_attentions)
        return self.output(context, x), probs


class BertIntermediate(nn.Module):
    """The feed-forward's expansion: dense to intermediate_size, then GELU."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = activation(config.hidden_act)

    def forward(self, x: Tensor) -> Tensor:
        return self.intermediate_act_fn(self.dense(x))


class BertLayer(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertResidualOutput(config.intermediate_size, config)

    def forward(
        self, x: Tensor, bias: Tensor | None, unpadding: Unpadding | None = None, output_attentions: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        x, probs = self.attention(x, bias, unpadding, output_attentions)
        return self.output(self.intermediate(x), x), probs


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))
        self.gradient_checkpointing = False

    def forward(
        self,
        x: Tensor,
        bias: Tensor | None,
        unpadding: Unpadding | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        hidden_states, attentions = [], []
        for layer in self.layer:
            if output_hidden_states:
                hidden_states.append(x)
            if self.gradient_checkpointing and self.training:
                # recompute the layer in backward instead of storing its activations: memory for compute
                x, probs = checkpoint(layer, x, bias, unpadding, output_attentions, use_reentrant=False)
            else:
                x, probs = layer(x, bias, unpadding, output_attentions)
            if output_attentions:
                attentions.append(probs)
        if output_hidden_states:
            hidden_states.append(x)
        return x, hidden_states, attentions


class BertPooler(nn.Module):
    """dense + tanh on the [CLS] vector: the sentence representation the NSP and classification heads read."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.activation(self.dense(hidden_states[:, 0]))


class BertPreTrainedModel(nn.Module):
    """What every BERT model shares: the config, HF's weight init, weight tying, from_pretrained/save_pretrained."""

    config_class = BertConfig
    base_model_prefix = "bert"

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        if not isinstance(config, BertConfig):
            raise UserError(
                f"{type(self).__name__} needs a BertConfig, got {type(config).__name__}: "
                f"use {type(self).__name__}(BertConfig(...)) or {type(self).__name__}.from_pretrained(folder)"
            )
        config.validate()
        if torch.get_default_device().type != "meta":  # on meta nothing is allocated (from_pretrained checks itself)
            check_model_size(config)
        self.config = config

    # init and tying -----------------------------------------------------------------------------------
    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """HF's init: normal(0, initializer_range) for dense and embedding weights, zero biases, LayerNorm = 1/0."""
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            module.weight.normal_(mean=0.0, std=std)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.normal_(mean=0.0, std=std)
            if module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            module.weight.fill_(1.0)
            module.bias.zero_()

    def post_init(self) -> None:
        """Initialise every weight, then tie the MLM decoder to the word embeddings (call at the end of __init__)."""
        self.apply(self._init_weights)  # (the MLM output bias is the decoder's bias: zeroed as a Linear bias)
        self.tie_weights()

    def get_input_embeddings(self) -> nn.Embedding:
        return getattr(self, self.base_model_prefix).embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        """Put in another word-embedding table (HF's); the config's vocab_size and a tied MLM decoder follow it."""
        if not isinstance(value, nn.Embedding) or value.embedding_dim != self.config.hidden_size:
            raise UserError(f"set_input_embeddings takes an nn.Embedding of width {self.config.hidden_size}, got "
                            f"{value!r}")
        getattr(self, self.base_model_prefix).embeddings.word_embeddings = value
        self.config.vocab_size = value.num_embeddings
        self.tie_weights()

    def get_output_head(self) -> nn.Module | None:
        """The vocabulary projection head (a `BertLMPredictionHead`) of models that have one; heads override this."""
        return None

    def get_output_embeddings(self) -> nn.Linear | None:
        head = self.get_output_head()
        return head.decoder if head is not None else None

    def tie_weights(self) -> None:
        """The MLM decoder shares the word-embedding matrix (its bias is the head's own output bias)."""
        head = self.get_output_head()
        if head is None:
            return
        head.tie_bias()
        if self.config.tie_word_embeddings:
            head.decoder.weight = self.get_input_embeddings().weight

    @torch.no_grad()
    def resize_token_embeddings(self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None,
                                mean_resizing: bool = True) -> nn.Embedding:
        """Grow or shrink the vocabulary (after adding tokens to the tokenizer): existing rows are kept, new rows
        initialised like the others; the MLM decoder and its bias follow; config.vocab_size is updated.
        `pad_to_multiple_of` rounds the size up (64 suits tensor cores), as HF does; `mean_resizing` is accepted
        for HF's signature, but new rows are drawn as at initialisation either way."""
        if new_num_tokens is None:
            new_num_tokens = self.get_input_embeddings().num_embeddings
        if not isinstance(new_num_tokens, int) or new_num_tokens < 1:
            raise UserError(f"new_num_tokens must be a positive integer, got {new_num_tokens!r}")
        if pad_to_multiple_of is not None:
            if not isinstance(pad_to_multiple_of, int) or pad_to_multiple_of < 1:
                raise UserError(f"pad_to_multiple_of must be a positive integer, got {pad_to_multiple_of!r}")
            new_num_tokens = -(-new_num_tokens // pad_to_multiple_of) * pad_to_multiple_of
        std = self.config.initializer_range

        def resized(weight: Tensor, fill_std: float) -> nn.Parameter:
            new = weight.new_empty(new_num_tokens, *weight.shape[1:]).normal_(0.0, fill_std)
            keep = min(len(weight), new_num_tokens)
            new[:keep] = weight[:keep]
            return nn.Parameter(new)

        embeddings = self.get_input_embeddings()
        embeddings.weight, embeddings.num_embeddings = resized(embeddings.weight, std), new_num_tokens
        head = self.get_output_head()
        if head is not None:
            head.bias = resized(head.bias, 0.0)  # new output biases start at 0
            head.decoder.out_features = new_num_tokens
            if not self.config.tie_word_embeddings:  # an untied decoder keeps its own rows
                head.decoder.weight = resized(head.decoder.weight, std)
            self.tie_weights()
        self.config.vocab_size = new_num_tokens
        return embeddings

    # conveniences -------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        """Parameter count (tied matrices counted once); `exclude_embeddings` leaves out every embedding table
        (words, positions, segments), as HF counts."""
        skip = {id(m.weight) for m in self.modules() if isinstance(m, nn.Embedding)} if exclude_embeddings else set()
        return sum(p.numel() for p in self.parameters() if (p.requires_grad or not only_trainable) and id(p) not in skip)

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict[str, Any] | None = None) -> None:
        """Recompute each layer in backward instead of storing its activations. HF's keywords are accepted; the
        recomputation is always torch's non-reentrant one (`use_reentrant=True` is refused: it drops gradients of
        inputs that need none, which a frozen embedding would be)."""
        if (gradient_checkpointing_kwargs or {}).get("use_reentrant"):
            raise UserError("gradient_checkpointing_kwargs={'use_reentrant': True} is not supported: bertkit "
                            "recomputes with use_reentrant=False; leave it out")
        for module in self.modules():
            if isinstance(module, BertEncoder):
                module.gradient_checkpointing = True

    @property
    def is_gradient_checkpointing(self) -> bool:
        return any(getattr(module, "gradient_checkpointing", False) for module in self.modules())

    def gradient_checkpointing_disable(self) -> None:
        for module in self.modules():
            if isinstance(module, BertEncoder):
                module.gradient_checkpointing = False

    def _return(self, output: ModelOutput, return_dict: bool | None) -> ModelOutput | tuple:
        return_dict = self.config.return_dict if return_dict is None else return_dict
        return output if return_dict else output.to_tuple()

    # checkpoints --------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs: Any) -> "BertPreTrainedModel":
        """Load a HuggingFace-layout folder (config.json + safetensors/bin, sharded or not); keyword arguments
        that name config fields override config.json (num_labels=3, output_hidden_states=True, ...).
        Also: config=, torch_dtype= (or dtype=), device=, ignore_mismatched_sizes=, local_files_only=."""
        from .hf_checkpoint import load_pretrained

        return load_pretrained(cls, name_or_path, **kwargs)

    def save_pretrained(self, folder: str | os.PathLike, max_shard_size: int | str | None = None, **kwargs: Any) -> None:
        """Write config.json + model.safetensors (or shards with an index when max_shard_size is given)."""
        from bertkit.utils.logging import warn_ignored

        from .hf_checkpoint import save_pretrained

        if kwargs:  # safe_serialization, push_to_hub, ...: always safetensors, never uploaded
            warn_ignored(f"{type(self).__name__}.save_pretrained", kwargs, "weights are always written as safetensors, locally")

        save_pretrained(self, folder, max_shard_size=max_shard_size)


class BertModel(BertPreTrainedModel):
    """The bare encoder: last_hidden_state [batch, seq, hidden] and pooler_output [batch, hidden]."""

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True) -> None:
        super().__init__(config)
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def _check_inputs(self, input_ids: Tensor | None, token_type_ids: Tensor | None, inputs_embeds: Tensor | None) -> None:
        """Clear errors instead of torch's 'index out of range in self' (checked on CPU only: on GPU the check
        would force a device sync every batch). The shape checks hold under torch.compile too; the id range reads
        values, which would split a compiled graph, so there it is left to the eager call before compiling."""
        if (input_ids is None) == (inputs_embeds is None):
            raise UserError("pass exactly one of input_ids or inputs_embeds")
        shape = input_ids.shape if input_ids is not None else inputs_embeds.shape[:-1]
        if len(shape) != 2:
            raise UserError(
                f"input_ids must be [batch, seq], got shape {tuple(shape)}: add a batch dimension "
                "(tokenizer(..., return_tensors='pt') does) or use unsqueeze(0)"
            )
        if shape[1] > self.config.max_position_embeddings:
            raise UserError(
                f"sequence length {shape[1]} is longer than max_position_embeddings="
                f"{self.config.max_position_embeddings}: truncate the input (tokenizer(..., truncation=True, "
                f"max_length={self.config.max_position_embeddings}))"
            )
        for name, ids, rows in (("input_ids", input_ids, self.config.vocab_size),
                                ("token_type_ids", token_type_ids, self.config.type_vocab_size)):
            if ids is None or ids.device.type != "cpu" or ids.numel() == 0 or torch.compiler.is_compiling():
                continue
            low, high = int(ids.min()), int(ids.max())
            if low < 0 or high >= rows:
                bad = high if high >= rows else low
                hint = ("the tokenizer's vocabulary does not match this model's embedding matrix: load the tokenizer "
                        "saved with the model" if name == "input_ids" else "segment ids must be 0 or 1")
                raise UserError(f"{name} contains {bad}, outside the model's {rows} embedding rows; {hint}")

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        unpad: bool | str | None = None,
    ) -> BaseModelOutputWithPooling | tuple:
        """unpad: run the token-wise layers on the real tokens only (same values on real tokens; padding positions
        of last_hidden_state / hidden_states are zeros instead of HF's values computed from [PAD]). True: whenever
        the batch has padding; False: never; "auto": when at least UNPAD_MIN_PADDING of the batch is padding (where
        it is faster). None (the default): "auto" where the padding positions' outputs are read by nobody (inside
        `padding_outputs_unused()`: bertkit's pipelines, evaluation and Trainer), else False, so a direct call gives
        HF's numbers at every position."""
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        self._check_inputs(input_ids, token_type_ids, inputs_embeds)

        x = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds)
        bias = attention_bias(attention_mask, x.dtype)
        if unpad is None:
            unpad = not torch.compiler.is_compiling() and _PADDING_UNUSED.get() and not output_hidden_states and "auto"
        if unpad == "auto":  # a data-dependent choice: eager mode only (a compiled graph stays padded)
            unpad = bias is not None and not torch.compiler.is_compiling() and \
                float(attention_mask.float().mean()) <= 1.0 - UNPAD_MIN_PADDING
        unpadding = Unpadding(attention_mask) if unpad and bias is not None else None
        if unpadding is not None:
            x = unpadding.unpad(x)

        x, hidden_states, attentions = self.encoder(x, bias, unpadding, output_attentions, output_hidden_states)
        if unpadding is not None:
            x = unpadding.pad(x)
            hidden_states = [unpadding.pad(h) for h in hidden_states]
        output = BaseModelOutputWithPooling(
            last_hidden_state=x,
            pooler_output=self.pooler(x) if self.pooler is not None else None,
            hidden_states=tuple(hidden_states) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
        )
        return self._return(output, return_dict)
