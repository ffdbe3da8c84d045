"""Causal self-attention: the scaled dot product, masks, and multi-head attention with shared
key/value heads (MHA when n_kv_heads == n_heads, GQA in between, MQA when n_kv_heads == 1).

Chapter 2 builds attention step by step and checks it against this module; chapter 3 shares K/V heads.
`Attention` holds the settings of one layer's attention; `MultiHeadAttention` is the module they build.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .cache import KVLayerCache
from .norms import RMSNorm
from .positions import make_positions
from .settings import ConfigError, Settings, boolean, choice, is_positive_int, positive_int


def causal_mask(T: int, device=None) -> torch.Tensor:
    """(T, T) boolean mask, True where query i may look at key j, i.e. j <= i."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def position_mask(q_positions: torch.Tensor, k_positions: torch.Tensor) -> torch.Tensor:
    """(T_q, T_k) boolean mask for queries and keys at any positions: a key is visible unless it is in the future."""
    return k_positions[None, :] <= q_positions[:, None]


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


QK_NORMS = {None: NoQKNorm, "per_head": PerHeadQKNorm, "full": FullQKNorm}


@dataclass(frozen=True)
class Attention(Settings):
    """Settings of causal multi-head attention whose key/value heads are shared by groups of query heads.

    n_kv_heads == n_heads is MHA, 1 is MQA, anything between is GQA (None: n_heads). head_dim None is
    d_model // n_heads. qk_norm: None, "per_head" (Qwen3) or "full" width (OLMo 2).
    """

    n_heads: int = 12
    n_kv_heads: int | None = None
    head_dim: int | None = None
    qk_norm: str | None = None
    qkv_bias: bool = False
    out_bias: bool = False

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

    @property
    def rotary_head_dim(self) -> int:
        """The per-head width the layer's RoPE rotates: the whole query/key head."""
        return self.head_dim

    def cache_values(self, seq_len: int) -> int:
        """Numbers one sequence's cache holds after `seq_len` tokens: a key and a value per K/V head per token."""
        return 2 * self.n_kv_heads * self.head_dim * seq_len

    def build(self, config, layer) -> MultiHeadAttention:
        return MultiHeadAttention(config, layer)

    def tiny(self) -> Attention:
        """4 query heads of 16: MHA stays MHA (4 K/V heads), GQA keeps sharing (2), MQA keeps one."""
        n_kv_heads = 4 if self.n_kv_heads == self.n_heads else 1 if self.n_kv_heads == 1 else 2
        return Attention(4, n_kv_heads, 16, self.qk_norm, self.qkv_bias, self.out_bias)

    def __str__(self) -> str:
        kind = "MHA" if self.n_kv_heads == self.n_heads else "MQA" if self.n_kv_heads == 1 else "GQA"
        heads = f"{self.n_heads} heads" if kind == "MHA" else f"{self.n_heads} q / {self.n_kv_heads} kv"
        extras = [f"{self.qk_norm.replace('_', '-')} qk-norm"] if self.qk_norm else []
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
        qk_norm = QK_NORMS[settings.qk_norm]  # identity when settings.qk_norm is None
        self.q_norm = qk_norm(self.head_dim, self.n_heads, config.norm_eps)
        self.k_norm = qk_norm(self.head_dim, self.n_kv_heads, config.norm_eps)
        self.positions = make_positions(layer.positions, self.head_dim)
        self.dropout = config.dropout

    def new_cache(self, batch_size: int) -> KVLayerCache:
        """An empty cache for this layer: keys and values, written in place into buffers allocated ahead."""
        return KVLayerCache(batch_size)

    def forward(self, x: torch.Tensor, positions: torch.Tensor, cache=None) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.q_norm(self.q_proj(x)).view(B, T, self.n_heads, self.head_dim)  # (B, T, n_heads, head_dim)
        k = self.k_norm(self.k_proj(x)).view(B, T, self.n_kv_heads, self.head_dim)  # (B, T, n_kv_heads, head_dim)
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, heads, T, head_dim)
        q, k = self.positions(q, k, positions)
        if cache is not None:
            k, v = cache.update(k, v)  # (B, n_kv_heads, T_past + T, head_dim)
        if T == 1 and self.n_kv_heads != self.n_heads:
            # One new token (a decode step): the queries of a group become that K/V head's queries, so each
            # K/V head is read once instead of copied for every query head of its group (chapter 3).
            group = self.n_heads // self.n_kv_heads
            out = F.scaled_dot_product_attention(
                q.reshape(B, self.n_kv_heads, group, self.head_dim), k, v,
                dropout_p=self.dropout if self.training else 0.0,
            )  # (B, n_kv_heads, group, head_dim): every cached key is in the new token's past
            return self.out_proj(out.reshape(B, T, self.n_heads * self.head_dim))
        past = k.shape[2] - T
        # Without a past the plain causal mask applies; with one, query i sits at position past + i. A single
        # new token (a decode step) may see every cached key, so it needs no mask at all.
        mask = None if past == 0 or T == 1 else position_mask(positions, torch.arange(k.shape[2], device=x.device))
        out = F.scaled_dot_product_attention(
            q, k, v,
            attn_mask=mask,
            is_causal=mask is None and T > 1,
            dropout_p=self.dropout if self.training else 0.0,
            enable_gqa=self.n_kv_heads != self.n_heads,
        )  # (B, n_heads, T, head_dim)
        return self.out_proj(out.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))
