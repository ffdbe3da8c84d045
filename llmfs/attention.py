"""Causal self-attention: the scaled dot product, masks, and multi-head attention with shared
key/value heads (MHA when n_kv_heads == n_heads, GQA in between, MQA when n_kv_heads == 1).

Chapter 2 builds attention step by step and checks it against this module; chapter 3 shares K/V heads.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .norms import RMSNorm
from .positions import LAYER_POSITIONS


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

    def __init__(self, config, n_heads: int):
        super().__init__(config.head_dim, config.norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.unflatten(-1, (-1, self.weight.shape[0]))).flatten(-2)


class FullQKNorm(RMSNorm):
    """QK-norm at full width (OLMo 2): one RMSNorm over the whole projection, all n_heads * head_dim features."""

    def __init__(self, config, n_heads: int):
        super().__init__(n_heads * config.head_dim, config.norm_eps)


class NoQKNorm(nn.Identity):
    """No QK-norm: queries and keys go to attention as projected."""

    def __init__(self, config, n_heads: int):
        super().__init__()


QK_NORMS = {None: NoQKNorm, "per_head": PerHeadQKNorm, "full": FullQKNorm}


class MultiHeadAttention(nn.Module):
    """Causal multi-head self-attention with n_kv_heads key/value heads shared by groups of query heads.

    Each of the n_heads query heads reads key/value head `h // (n_heads // n_kv_heads)`; fewer K/V
    heads mean a smaller KV cache (chapter 3). Optional QK-norm, per head (Qwen3) or at full width
    (OLMo 2), is applied to the projections before the layer's position encoding (chapter 7).
    """

    def __init__(self, config, spec):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.n_kv_heads, config.head_dim
        d, q_dim, kv_dim = config.d_model, config.n_heads * config.head_dim, config.n_kv_heads * config.head_dim
        self.q_proj = nn.Linear(d, q_dim, bias=config.qkv_bias)
        self.k_proj = nn.Linear(d, kv_dim, bias=config.qkv_bias)
        self.v_proj = nn.Linear(d, kv_dim, bias=config.qkv_bias)
        self.out_proj = nn.Linear(q_dim, d, bias=config.attn_out_bias)
        self.q_norm = QK_NORMS[config.qk_norm](config, config.n_heads)  # identity when config.qk_norm is None
        self.k_norm = QK_NORMS[config.qk_norm](config, config.n_kv_heads)
        self.positions = LAYER_POSITIONS[spec.positions](config)
        self.dropout = config.dropout

    @staticmethod
    def cache_values_per_token(config) -> int:
        """Numbers this layer caches per token: one key and one value vector per K/V head."""
        return 2 * config.n_kv_heads * config.head_dim

    def forward(self, x: torch.Tensor, positions: torch.Tensor, cache=None) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.q_norm(self.q_proj(x)).view(B, T, self.n_heads, self.head_dim)  # (B, T, n_heads, head_dim)
        k = self.k_norm(self.k_proj(x)).view(B, T, self.n_kv_heads, self.head_dim)  # (B, T, n_kv_heads, head_dim)
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, heads, T, head_dim)
        q, k = self.positions(q, k, positions)
        if cache is not None:
            k, v = cache.update(k, v)  # (B, n_kv_heads, T_past + T, head_dim)
        past = k.shape[2] - T
        # Without a past the plain causal mask applies; with one, query i sits at position past + i.
        mask = None if past == 0 else position_mask(positions, torch.arange(k.shape[2], device=x.device))
        out = F.scaled_dot_product_attention(
            q, k, v,
            attn_mask=mask,
            is_causal=mask is None,
            dropout_p=self.dropout if self.training else 0.0,
            enable_gqa=self.n_kv_heads != self.n_heads,
        )  # (B, n_heads, T, head_dim)
        return self.out_proj(out.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))


ATTENTION = {"multi_head": MultiHeadAttention}
