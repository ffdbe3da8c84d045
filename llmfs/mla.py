"""Multi-head latent attention (MLA, DeepSeek-V2) and DeepSeek Sparse Attention (DSA, DeepSeek-V3.2).

MLA caches one small latent per token instead of per-head keys and values (chapter 4):

    x ─kv_down─▶ [latent c (kv_lora_rank) | rotary key k_R (qk_rope_head_dim)]      ← the cache holds these
    c ─RMSNorm─kv_up─▶ per-head key part k_C (qk_nope_head_dim) and value (v_head_dim)
    x ─(q_down─RMSNorm─)q_up─▶ per-head query [q_C (qk_nope_head_dim) | q_R (qk_rope_head_dim)]
    score_h = (q_C,h · k_C,h + RoPE(q_R,h) · RoPE(k_R)) / √(qk_nope_head_dim + qk_rope_head_dim)

Decoupled RoPE: positions act only on q_R and on one rotary key shared by all heads, so the key part
q_C,h · k_C,h = q_C,hᵀ W_UK,h c is a fixed linear map of the latent. That lets decoding *absorb* W_UK,h
into the query (q̃_h = W_UK,hᵀ q_C,h) and apply W_UV,h after attention, attending directly over cached
latents: MQA with one shared key [c | k_R] of width kv_lora_rank + qk_rope_head_dim and value c.

DSA adds a lightning indexer: a few cheap ReLU heads score every past token, and each query attends only
to its `index_topk` best-scored tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attention import causal_mask, position_mask
from .cache import LayerCache
from .norms import RMSNorm
from .positions import make_positions, rope_logit_scale
from .settings import ConfigError, Settings, positive_int

LATENT_NORM_EPS = 1e-6  # DeepSeek's RMSNorms on the latents use a fixed eps, whatever the model's norm_eps


def _rank(field_name: str, value, d_model: int) -> None:
    positive_int(field_name, value)
    if value > d_model:
        raise ConfigError(f"{field_name}={value} is larger than d_model={d_model}: a low-rank compression "
                          "must be no wider than the model.")


@dataclass(frozen=True)
class MLA(Settings):
    """Settings of multi-head latent attention. Defaults are DeepSeek-V3's.

    kv_lora_rank: width of the cached latent; q_lora_rank: width of the query's low-rank bottleneck, or None
    for a full-rank query projection (DeepSeek-V2-Lite). Each query/key head is qk_nope_head_dim (from the
    latent) + qk_rope_head_dim (rotary) wide; each value head is v_head_dim wide.
    """

    n_heads: int = 128
    kv_lora_rank: int = 512
    q_lora_rank: int | None = 1536
    qk_nope_head_dim: int = 128
    qk_rope_head_dim: int = 64
    v_head_dim: int = 128

    def check(self, d_model: int) -> None:
        positive_int("n_heads", self.n_heads)
        _rank("kv_lora_rank", self.kv_lora_rank, d_model)
        if self.q_lora_rank is not None:
            _rank("q_lora_rank", self.q_lora_rank, d_model)
        positive_int("qk_nope_head_dim", self.qk_nope_head_dim)
        positive_int("qk_rope_head_dim", self.qk_rope_head_dim)
        if self.qk_rope_head_dim % 2:
            raise ConfigError(f"qk_rope_head_dim={self.qk_rope_head_dim} must be even: RoPE rotates pairs.")
        positive_int("v_head_dim", self.v_head_dim)

    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    @property
    def rotary_head_dim(self) -> int:
        """RoPE rotates only the decoupled rotary part of each query and the shared rotary key."""
        return self.qk_rope_head_dim

    def cache_values(self, seq_len: int) -> int:
        """Numbers one sequence's cache holds: the latent and the shared rotary key per token."""
        return (self.kv_lora_rank + self.qk_rope_head_dim) * seq_len

    def build(self, config, layer) -> MultiHeadLatentAttention:
        return MultiHeadLatentAttention(config, layer)

    def tiny(self) -> MLA:
        """4 heads, latent 32, rotary 8, key head 16 + 8, value head 16 (query rank 48 if compressed)."""
        return MLA(4, 32, None if self.q_lora_rank is None else 48, 16, 8, 16)

    def __str__(self) -> str:
        q = "" if self.q_lora_rank is None else f", q rank {self.q_lora_rank}"
        return (f"MLA({self.n_heads} heads, latent {self.kv_lora_rank} + rope {self.qk_rope_head_dim}{q}, "
                f"d_qk={self.qk_head_dim}, d_v={self.v_head_dim})")


class LatentCache(LayerCache):
    """What MLA keeps per token: tensors (B, T_cached, width) grown along the sequence (dimension 1):
    the latent and the rotary key, plus the indexer's key under DSA."""

    def update(self, *new: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.check_batch(new)
        if self.tensors:
            self.tensors = tuple(torch.cat((old, t), dim=1) for old, t in zip(self.tensors, new))
        else:
            self.tensors = tuple(new)
        self.length += new[0].shape[1]
        return self.tensors


class MultiHeadLatentAttention(nn.Module):
    """Causal MLA. `forward` expands the latent into per-head keys and values (the naive path) for training
    and prefill, and attends over the latents with absorbed weights (the absorbed path) when decoding.
    Set `absorb` to True or False to force one path; both give the same output.
    """

    def __init__(self, config, layer):
        super().__init__()
        s = layer.attention
        d = config.d_model
        self.n_heads, self.kv_lora_rank = s.n_heads, s.kv_lora_rank
        self.nope_dim, self.rope_dim, self.v_dim = s.qk_nope_head_dim, s.qk_rope_head_dim, s.v_head_dim
        q_width = s.n_heads * s.qk_head_dim
        if s.q_lora_rank is None:
            self.q_down, self.q_norm, self.q_up = nn.Identity(), nn.Identity(), nn.Linear(d, q_width, bias=False)
        else:
            self.q_down = nn.Linear(d, s.q_lora_rank, bias=False)
            self.q_norm = RMSNorm(s.q_lora_rank, LATENT_NORM_EPS)
            self.q_up = nn.Linear(s.q_lora_rank, q_width, bias=False)
        self.kv_down = nn.Linear(d, s.kv_lora_rank + s.qk_rope_head_dim, bias=False)  # latent | rotary key
        self.kv_norm = RMSNorm(s.kv_lora_rank, LATENT_NORM_EPS)
        self.kv_up = nn.Linear(s.kv_lora_rank, s.n_heads * (s.qk_nope_head_dim + s.v_head_dim), bias=False)
        self.out_proj = nn.Linear(s.n_heads * s.v_head_dim, d, bias=False)
        self.positions = make_positions(layer.positions, s.qk_rope_head_dim)
        logit_scale = 1.0 if layer.positions is None else rope_logit_scale(layer.positions.scaling)
        self.scale = logit_scale / math.sqrt(s.qk_head_dim)
        self.dropout = config.dropout
        self.absorb: bool | None = None  # None: absorbed when decoding with a cache, naive otherwise

    def new_cache(self, batch_size: int) -> LatentCache:
        return LatentCache(batch_size)

    def up_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """W_UK (n_heads, qk_nope_head_dim, kv_lora_rank) and W_UV (n_heads, v_head_dim, kv_lora_rank)."""
        w = self.kv_up.weight.view(self.n_heads, self.nope_dim + self.v_dim, self.kv_lora_rank)
        return w[:, :self.nope_dim], w[:, self.nope_dim:]

    def project(self, x: torch.Tensor, positions: torch.Tensor):
        """Queries (B, n_heads, T, qk_head_dim) with rotated rotary parts, the normalized latent (B, T, kv_lora_rank),
        the rotated rotary key (B, T, qk_rope_head_dim), and the query latent the DSA indexer reads."""
        B, T, _ = x.shape
        q_latent = self.q_norm(self.q_down(x))
        q = self.q_up(q_latent).view(B, T, self.n_heads, -1).transpose(1, 2)  # (B, n_heads, T, qk_head_dim)
        q_nope, q_rope = q.split([self.nope_dim, self.rope_dim], dim=-1)
        latent, k_rope = self.kv_down(x).split([self.kv_lora_rank, self.rope_dim], dim=-1)
        q_rope, k_rope = self.positions(q_rope, k_rope[:, None], positions)  # k_rope: one head shared by all
        return torch.cat((q_nope, q_rope), dim=-1), self.kv_norm(latent), k_rope[:, 0], q_latent

    def attend_naive(self, q, latent, k_rope, mask):
        """Expand every cached latent into per-head keys and values, then multi-head attention."""
        B, S, _ = latent.shape
        kv = self.kv_up(latent).view(B, S, self.n_heads, -1).transpose(1, 2)  # (B, n_heads, S, nope + v)
        k_nope, v = kv.split([self.nope_dim, self.v_dim], dim=-1)
        k = torch.cat((k_nope, k_rope[:, None].expand(-1, self.n_heads, -1, -1)), dim=-1)
        return self.sdpa(q, k, v, mask)  # (B, n_heads, T, v_head_dim)

    def attend_absorbed(self, q, latent, k_rope, mask):
        """Fold W_UK into the queries and apply W_UV after attention: every head attends over the same
        cached [latent | rotary key] (MQA), written out so that the latents are read once for all heads."""
        w_uk, w_uv = self.up_weights()
        q_nope, q_rope = q.split([self.nope_dim, self.rope_dim], dim=-1)
        q_absorbed = torch.einsum("bhtn,hnr->bhtr", q_nope, w_uk)  # (B, n_heads, T, kv_lora_rank)
        latent, k_rope = latent[:, None], k_rope[:, None]  # (B, 1, S, ...): one key head shared by all
        scores = (q_absorbed @ latent.transpose(-2, -1) + q_rope @ k_rope.transpose(-2, -1)) * self.scale
        if mask is None:
            mask = causal_mask(q.shape[2], device=q.device)
        weights = F.dropout(scores.masked_fill(~mask, float("-inf")).softmax(-1), self.dropout, self.training)
        context = weights @ latent  # (B, n_heads, T, kv_lora_rank): a weighted sum of latents
        return torch.einsum("bhtr,hvr->bhtv", context, w_uv)  # (B, n_heads, T, v_head_dim)

    def sdpa(self, q, k, v, mask):
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=mask is None, scale=self.scale,
            dropout_p=self.dropout if self.training else 0.0)

    def keep(self, x, positions, latent, k_rope) -> tuple[torch.Tensor, ...]:
        """What the cache keeps of these tokens: the latent (B, T, kv_lora_rank) and rotary key (B, T, rope)."""
        return latent, k_rope

    def attention_mask(self, x, q_latent, positions, kept):
        """(T, S) causal mask over the S kept tokens, or None when the plain causal mask applies (no past)."""
        n_keys = kept[0].shape[1]
        return None if n_keys == positions.shape[0] else position_mask(positions, torch.arange(n_keys, device=x.device))

    def forward(self, x: torch.Tensor, positions: torch.Tensor, cache=None) -> torch.Tensor:
        B, T, _ = x.shape
        q, latent, k_rope, q_latent = self.project(x, positions)
        kept = self.keep(x, positions, latent, k_rope)
        if cache is not None:
            kept = cache.update(*kept)  # everything cached so far, (B, T_past + T, ...)
        mask = self.attention_mask(x, q_latent, positions, kept)
        absorb = self.absorb if self.absorb is not None else cache is not None and cache.length > T
        out = (self.attend_absorbed if absorb else self.attend_naive)(q, kept[0], kept[1], mask)
        return self.out_proj(out.transpose(1, 2).reshape(B, T, self.n_heads * self.v_dim))


# --- DeepSeek Sparse Attention -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DSA(MLA):
    """MLA with DeepSeek Sparse Attention: a lightning indexer of `index_n_heads` ReLU heads of `index_head_dim`
    scores every past token from the query latent, and each query attends to its `index_topk` best.
    Needs a compressed query (q_lora_rank). Defaults are DeepSeek-V3.2's."""

    index_n_heads: int = 64
    index_head_dim: int = 128
    index_topk: int = 2048

    def check(self, d_model: int) -> None:
        super().check(d_model)
        if self.q_lora_rank is None:
            raise ConfigError("q_lora_rank=None: DSA's indexer reads the query latent, so it needs a q_lora_rank.")
        positive_int("index_n_heads", self.index_n_heads)
        positive_int("index_head_dim", self.index_head_dim)
        positive_int("index_topk", self.index_topk)
        if self.index_head_dim < self.qk_rope_head_dim:
            raise ConfigError(f"index_head_dim={self.index_head_dim} must be at least "
                              f"qk_rope_head_dim={self.qk_rope_head_dim}: its first dims are rotated.")

    def cache_values(self, seq_len: int) -> int:
        """The latent and rotary key, plus the indexer's key, per token."""
        return (self.kv_lora_rank + self.qk_rope_head_dim + self.index_head_dim) * seq_len

    def build(self, config, layer) -> SparseLatentAttention:
        return SparseLatentAttention(config, layer)

    def tiny(self) -> DSA:
        return DSA(4, 32, 48, 16, 8, 16, index_n_heads=4, index_head_dim=16, index_topk=16)

    def __str__(self) -> str:
        return f"DSA(top-{self.index_topk}, indexer {self.index_n_heads}×{self.index_head_dim}, {super().__str__()[4:]}"


class LightningIndexer(nn.Module):
    """Scores every key token for every query: index(t, s) = Σ_j w_j(x_t) · ReLU(q_j(t) · k(s)) / √d.

    Few heads, one shared key per token, and (in DeepSeek's kernels) FP8: far cheaper than attention.
    Query heads come from the query latent; the first qk_rope_head_dim dims of queries and keys are rotated.
    """

    def __init__(self, config, layer):
        super().__init__()
        s = layer.attention
        self.n_heads, self.head_dim, self.rope_dim = s.index_n_heads, s.index_head_dim, s.qk_rope_head_dim
        self.q_proj = nn.Linear(s.q_lora_rank, s.index_n_heads * s.index_head_dim, bias=False)
        self.k_proj = nn.Linear(config.d_model, s.index_head_dim, bias=False)
        self.k_norm = nn.LayerNorm(s.index_head_dim, eps=1e-6)
        self.head_weights = nn.Linear(config.d_model, s.index_n_heads, bias=False)
        self.positions = make_positions(layer.positions, s.qk_rope_head_dim)

    def keys(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The indexer key of each token, (B, T, index_head_dim): what the cache keeps for it."""
        k = self.k_norm(self.k_proj(x))[:, None]  # (B, 1, T, index_head_dim)
        k_rope, k_pass = k.split([self.rope_dim, self.head_dim - self.rope_dim], dim=-1)
        return torch.cat((self.positions(k_rope, k_rope, positions)[1], k_pass), dim=-1)[:, 0]

    def scores(self, x, q_latent, keys, positions) -> torch.Tensor:
        """(B, T, S) index scores of each query against every key token (future ones -inf)."""
        B, T, _ = x.shape
        q = self.q_proj(q_latent).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, heads, T, d)
        q_rope, q_pass = q.split([self.rope_dim, self.head_dim - self.rope_dim], dim=-1)
        q = torch.cat((self.positions(q_rope, q_rope, positions)[0], q_pass), dim=-1)
        per_head = F.relu(q.float() @ keys.float()[:, None].transpose(-2, -1) / math.sqrt(self.head_dim))
        weights = self.head_weights(x).float() / math.sqrt(self.n_heads)  # (B, T, heads)
        index = (weights[:, :, None, :] @ per_head.transpose(1, 2)).squeeze(2)  # (B, T, S)
        visible = position_mask(positions, torch.arange(keys.shape[1], device=x.device))
        return index.masked_fill(~visible, float("-inf"))


class SparseLatentAttention(MultiHeadLatentAttention):
    """MLA whose queries each attend only to the top `index_topk` tokens the lightning indexer picks."""

    def __init__(self, config, layer):
        super().__init__(config, layer)
        self.indexer = LightningIndexer(config, layer)
        self.top_k = layer.attention.index_topk
        self.last_selection: torch.Tensor | None = None  # (B, T, S) the most recent mask, for inspection

    def keep(self, x, positions, latent, k_rope):
        """The latent and rotary key, plus the indexer key (B, T, index_head_dim) of each token."""
        return latent, k_rope, self.indexer.keys(x, positions)

    def attention_mask(self, x, q_latent, positions, kept):
        """Causal and among each query's top-k index scores: (B, 1, T, S)."""
        scores = self.indexer.scores(x, q_latent, kept[2], positions)
        top = scores.topk(min(self.top_k, scores.shape[-1]), dim=-1).indices
        chosen = torch.zeros_like(scores, dtype=torch.bool).scatter(-1, top, True)
        self.last_selection = chosen & torch.isfinite(scores)
        return self.last_selection[:, None]
