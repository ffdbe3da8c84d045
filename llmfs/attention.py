"""Causal self-attention: the scaled dot product, masks, and multi-head attention with shared
key/value heads (MHA when n_kv_heads == n_heads, GQA in between, MQA when n_kv_heads == 1).

Chapter 2 builds attention step by step and checks it against this module; chapter 3 shares K/V heads;
chapter 5 limits each query to a window of recent keys (Mistral, Gemma 3, OLMo 3), keeps a few sink tokens
visible (StreamingLLM) or gives each head a learned sink logit (gpt-oss).
`Attention` holds the settings of one layer's attention; `MultiHeadAttention` is the module they build.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .cache import KVLayerCache, WindowLayerCache
from .norms import OffsetRMSNorm, RMSNorm
from .positions import make_positions
from .settings import ConfigError, Settings, boolean, choice, is_positive_int, number, positive_int


def causal_mask(T: int, device=None) -> torch.Tensor:
    """(T, T) boolean mask, True where query i may look at key j, i.e. j <= i."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def position_mask(q_positions: torch.Tensor, k_positions: torch.Tensor) -> torch.Tensor:
    """(T_q, T_k) boolean mask for queries and keys at any positions: a key is visible unless it is in the future."""
    return k_positions[None, :] <= q_positions[:, None]


def window_mask(q_positions: torch.Tensor, k_positions: torch.Tensor, window: int | None = None,
                sink_tokens: int = 0) -> torch.Tensor:
    """(T_q, T_k) boolean mask, True where a query may see a key: not in the future and, with a `window`,
    fewer than `window` positions back (the band), or one of the first `sink_tokens` tokens (StreamingLLM)."""
    visible = position_mask(q_positions, k_positions)  # (T_q, T_k)
    if window is not None:
        recent = q_positions[:, None] - k_positions[None, :] < window
        visible &= recent | (k_positions[None, :] < sink_tokens)
    return visible


def softmax_with_sinks(scores, sinks):
    """Softmax of scores (B, n_heads, T_q, T_k) over the keys plus one sink logit per head, sinks (n_heads,),
    whose share is dropped: the weights on real keys sum to less than 1."""
    sink = sinks.to(scores.dtype).view(1, -1, 1, 1).expand(*scores.shape[:-1], 1)  # (B, n_heads, T_q, 1)
    return torch.softmax(torch.cat((scores, sink), dim=-1), dim=-1)[..., :-1]


def attention_with_sinks(q, k, v, mask, sinks, scale: float, dropout: float = 0.0):
    """Softmax attention whose denominator has one more term per head, exp(sink logit) (gpt-oss).

    q (B, n_heads, T_q, d), k and v (B, n_kv_heads, T_k, d), mask (T_q, T_k) boolean, sinks (n_heads,).
    A head may put weight on "nothing": the weights on real keys sum to less than 1.
    """
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)  # (B, n_heads, T_k, d)
    scores = (q @ k.transpose(-2, -1)) * scale  # (B, n_heads, T_q, T_k)
    scores = scores.masked_fill(~mask, float("-inf"))
    return F.dropout(softmax_with_sinks(scores, sinks), dropout) @ v


def scaled_dot_product_attention(q, k, v, mask=None):
    """softmax(q kᵀ / √d) v, written out. Returns (output, weights).

    q (..., T_q, d), k (..., T_k, d), v (..., T_k, d_v); mask (T_q, T_k) boolean, True = may attend.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., T_q, T_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


class PerHeadQKNorm(RMSNorm):
    """QK-norm per head (Qwen3): RMSNorm over each head's head_dim features, one weight shared by all heads.

    Takes a projection (B, T, n_heads * head_dim) and returns it in the same shape.
    """

    def __init__(self, head_dim: int, n_heads: int, eps: float):
        super().__init__(head_dim, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.unflatten(-1, (-1, self.weight.shape[0]))).flatten(-2)


class FullQKNorm(RMSNorm):
    """QK-norm at full width (OLMo 2): one RMSNorm over the whole projection, all n_heads * head_dim features."""

    def __init__(self, head_dim: int, n_heads: int, eps: float):
        super().__init__(n_heads * head_dim, eps)


class NoQKNorm(nn.Identity):
    """No QK-norm: queries and keys go to attention as projected."""

    def __init__(self, head_dim: int, n_heads: int, eps: float):
        super().__init__()


class OffsetPerHeadQKNorm(PerHeadQKNorm, OffsetRMSNorm):
    """Per-head QK-norm with (1 + w) weights, for models whose norm is "offset_rmsnorm" (Gemma 3)."""


class OffsetFullQKNorm(FullQKNorm, OffsetRMSNorm):
    """Full-width QK-norm with (1 + w) weights."""


QK_NORMS = {None: NoQKNorm, "per_head": PerHeadQKNorm, "full": FullQKNorm}
OFFSET_QK_NORMS = {None: NoQKNorm, "per_head": OffsetPerHeadQKNorm, "full": OffsetFullQKNorm}


@dataclass(frozen=True)
class Attention(Settings):
    """Settings of causal multi-head attention whose key/value heads are shared by groups of query heads.

    n_kv_heads == n_heads is MHA, 1 is MQA, anything between is GQA (None: n_heads). head_dim None is
    d_model // n_heads. qk_norm: None, "per_head" (Qwen3) or "full" width (OLMo 2). output_gate: multiply
    the heads' output by sigmoid(a projection of the input) before the output projection (Qwen3-Next).
    window: each query sees only the last `window` positions, itself included (None: all); the cache then
    holds at most `window` tokens. sink_tokens: the first tokens stay visible and cached beside the window
    (StreamingLLM). sinks: a learned logit per head added to the softmax denominator (gpt-oss).
    scale: the logit multiplier (None: 1/√head_dim; Gemma uses query_pre_attn_scalar ** -0.5).
    """

    n_heads: int = 12
    n_kv_heads: int | None = None
    head_dim: int | None = None
    qk_norm: str | None = None
    qkv_bias: bool = False
    out_bias: bool = False
    window: int | None = None
    sink_tokens: int = 0
    sinks: bool = False
    scale: float | None = None
    output_gate: bool = False

    derivable = ("n_kv_heads", "head_dim")

    def derived(self, d_model: int) -> dict:
        if not is_positive_int(self.n_heads):
            return {}
        out = {"n_kv_heads": self.n_heads}
        if d_model % self.n_heads == 0:
            out["head_dim"] = d_model // self.n_heads
        return out

    def check(self, d_model: int) -> None:
        positive_int("n_heads", self.n_heads)
        if self.head_dim is None:
            raise ConfigError(
                f"d_model={d_model} is not divisible by n_heads={self.n_heads}; "
                "change one of them or set head_dim explicitly."
            )
        positive_int("n_kv_heads", self.n_kv_heads)
        positive_int("head_dim", self.head_dim)
        if self.n_heads % self.n_kv_heads:
            raise ConfigError(
                f"n_heads={self.n_heads} is not divisible by n_kv_heads={self.n_kv_heads}: "
                "each key/value head must serve the same number of query heads."
            )
        choice("qk_norm", self.qk_norm, tuple(QK_NORMS))
        boolean("qkv_bias", self.qkv_bias)
        boolean("out_bias", self.out_bias)
        boolean("output_gate", self.output_gate)
        if self.window is not None:
            positive_int("window", self.window)
        if not isinstance(self.sink_tokens, int) or isinstance(self.sink_tokens, bool) or self.sink_tokens < 0:
            raise ConfigError(f"sink_tokens must be an integer >= 0, got {self.sink_tokens!r}.")
        if self.sink_tokens and self.window is None:
            raise ConfigError(f"sink_tokens={self.sink_tokens} needs a window: without one every token stays "
                              "visible already.")
        boolean("sinks", self.sinks)
        if self.scale is not None:
            number("scale", self.scale, low=0)

    @property
    def softmax_scale(self) -> float:
        """What every query-key dot product is multiplied by before the softmax."""
        return self.head_dim ** -0.5 if self.scale is None else self.scale

    @property
    def rotary_head_dim(self) -> int:
        """The per-head width the layer's RoPE rotates: the whole query/key head."""
        return self.head_dim

    def cache_values(self, seq_len: int) -> int:
        """Numbers one sequence's cache holds after `seq_len` tokens: a key and a value per K/V head per held
        token; a windowed layer holds at most its sink tokens plus its window."""
        held = seq_len if self.window is None else min(seq_len, self.sink_tokens + self.window)
        return 2 * self.n_kv_heads * self.head_dim * held

    def build(self, config, layer) -> MultiHeadAttention:
        return MultiHeadAttention(config, layer)

    def tiny(self) -> Attention:
        """4 query heads of 16: MHA stays MHA (4 K/V heads), GQA keeps sharing (2), MQA keeps one."""
        n_kv_heads = 4 if self.n_kv_heads == self.n_heads else 1 if self.n_kv_heads == 1 else 2
        window = None if self.window is None else min(self.window, 16)  # shorter than tiny test sequences
        return dataclasses.replace(self, n_heads=4, n_kv_heads=n_kv_heads, head_dim=16, window=window,
                                   sink_tokens=min(self.sink_tokens, 2))

    def __str__(self) -> str:
        kind = "MHA" if self.n_kv_heads == self.n_heads else "MQA" if self.n_kv_heads == 1 else "GQA"
        heads = f"{self.n_heads} heads" if kind == "MHA" else f"{self.n_heads} q / {self.n_kv_heads} kv"
        extras = [f"{self.qk_norm.replace('_', '-')} qk-norm"] if self.qk_norm else []
        extras += ["output gate"] if self.output_gate else []
        extras += [f"window {self.window}"] if self.window is not None else []
        extras += [f"{self.sink_tokens} sink tokens"] if self.sink_tokens else []
        extras += ["learned sinks"] if self.sinks else []
        extras += [f"scale {self.scale:.4g}"] if self.scale is not None else []
        return f"{kind}({', '.join([heads, f'd={self.head_dim}'] + extras)})"


class MultiHeadAttention(nn.Module):
    """Causal multi-head self-attention with n_kv_heads key/value heads shared by groups of query heads.

    Each of the n_heads query heads reads key/value head `h // (n_heads // n_kv_heads)`; fewer K/V
    heads mean a smaller KV cache (chapter 3). Optional QK-norm, per head (Qwen3) or at full width
    (OLMo 2), is applied to the projections before the layer's position encoding (chapter 7).
    Built from one layer's spec: `layer.attention` (an `Attention`) and `layer.positions`.
    """

    def __init__(self, config, layer):
        super().__init__()
        settings = layer.attention
        self.n_heads, self.n_kv_heads, self.head_dim = settings.n_heads, settings.n_kv_heads, settings.head_dim
        d, q_dim, kv_dim = config.d_model, self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        self.q_proj = nn.Linear(d, q_dim, bias=settings.qkv_bias)
        self.k_proj = nn.Linear(d, kv_dim, bias=settings.qkv_bias)
        self.v_proj = nn.Linear(d, kv_dim, bias=settings.qkv_bias)
        self.out_proj = nn.Linear(q_dim, d, bias=settings.out_bias)
        self.gate_proj = nn.Linear(d, q_dim, bias=settings.qkv_bias) if settings.output_gate else None
        qk_norms = OFFSET_QK_NORMS if config.norm == "offset_rmsnorm" else QK_NORMS
        qk_norm = qk_norms[settings.qk_norm]  # identity when settings.qk_norm is None
        self.q_norm = qk_norm(self.head_dim, self.n_heads, config.norm_eps)
        self.k_norm = qk_norm(self.head_dim, self.n_kv_heads, config.norm_eps)
        self.positions = make_positions(layer.positions, self.head_dim)
        self.dropout = config.dropout
        self.window, self.sink_tokens = settings.window, settings.sink_tokens
        self.scale, self.softmax_scale = settings.scale, settings.softmax_scale  # scale None: SDPA's 1/√head_dim
        if settings.sinks:  # one learned logit per head, the softmax's extra "attend to nothing" term (gpt-oss)
            self.sinks = nn.Parameter(torch.zeros(self.n_heads))
        else:
            self.sinks = None

    def new_cache(self, batch_size: int) -> KVLayerCache | WindowLayerCache:
        """An empty cache for this layer: keys and values written in place into buffers allocated ahead, or with a window, a ring
        buffer of the last `window` tokens (plus the sink tokens)."""
        if self.window is None:
            return KVLayerCache(batch_size)
        return WindowLayerCache(batch_size, self.window, self.sink_tokens)

    def forward(self, x: torch.Tensor, positions: torch.Tensor, cache=None) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.q_norm(self.q_proj(x)).view(B, T, self.n_heads, self.head_dim)  # (B, T, n_heads, head_dim)
        k = self.k_norm(self.k_proj(x)).view(B, T, self.n_kv_heads, self.head_dim)  # (B, T, n_kv_heads, head_dim)
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, heads, T, head_dim)
        q, k = self.positions(q, k, positions)
        if isinstance(cache, WindowLayerCache):
            k, v, key_positions = cache.update(k, v)  # held tokens (in ring order) then new ones
        elif cache is not None:
            k, v = cache.update(k, v)  # (B, n_kv_heads, T_past + T, head_dim)
            key_positions = None  # 0, 1, ..., T_past + T - 1, made below if a mask needs them
        else:
            key_positions = positions
        dropout = self.dropout if self.training else 0.0
        if T == 1 and self.window is None and self.sinks is None:
            # One new token (a decode step) sees every cached key, so it needs no mask; and the queries of a
            # group become that K/V head's queries, so each K/V head is read once instead of copied for every
            # query head of its group (chapter 3).
            group = self.n_heads // self.n_kv_heads
            out = F.scaled_dot_product_attention(
                q.reshape(B, self.n_kv_heads, group, self.head_dim), k, v, dropout_p=dropout, scale=self.scale,
            ).reshape(B, self.n_heads, T, self.head_dim)  # computed as (B, n_kv_heads, group, head_dim)
        else:
            # The plain causal mask applies when the keys are the queries' own tokens and no window cuts them.
            plain = k.shape[2] == T and (self.window is None or T <= self.window)
            if plain and self.sinks is None:
                mask = None
            else:
                if key_positions is None:
                    key_positions = torch.arange(k.shape[2], device=x.device)
                mask = window_mask(positions, key_positions, self.window, self.sink_tokens)
            if self.sinks is not None:
                out = attention_with_sinks(q, k, v, mask, self.sinks, self.softmax_scale, dropout)
            else:
                out = F.scaled_dot_product_attention(
                    q, k, v,
                    attn_mask=mask,
                    is_causal=mask is None,
                    dropout_p=dropout,
                    scale=self.scale,
                    enable_gqa=self.n_kv_heads != self.n_heads,
                )  # (B, n_heads, T, head_dim)
        out = out.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)
        if self.gate_proj is not None:  # gated attention: each output feature scaled by a sigmoid of the input
            out = out * torch.sigmoid(self.gate_proj(x))
        return self.out_proj(out)
