"""PyTorch references for the Triton kernels: what each kernel must compute, written the plain way."""

import math

import torch
import torch.nn.functional as F

from ..norms import RMSNorm
from ..positions import apply_rope


def add_reference(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return x + y


def softmax_reference(x: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dimension, computed in fp32 and cast back (as the kernel does)."""
    return torch.softmax(x.float(), dim=-1).to(x.dtype)


def rms_norm_reference(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """llmfs.norms.RMSNorm (chapter 7) with the given weight."""
    norm = RMSNorm(x.shape[-1], eps=eps).to(x.device)
    return torch.func.functional_call(norm, {"weight": weight}, (x,))


def rope_reference(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """llmfs.positions.apply_rope (chapter 8), split-halves layout, computed in fp32 and cast back."""
    return apply_rope(x.float(), cos.float(), sin.float(), layout="halves").to(x.dtype)


def matmul_reference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b accumulated in fp32 and cast back."""
    return (a.float() @ b.float()).to(a.dtype)


def attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True,
                        sm_scale: float | None = None) -> torch.Tensor:
    """softmax(q k^T * scale) v in fp32, with the causal mask and grouped-query heads, cast back.

    q: (batch, n_heads, seq, d); k, v: (batch, n_kv_heads, seq, d), n_kv_heads dividing n_heads.
    """
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=causal, scale=sm_scale)
    return out.to(q.dtype)


def attention_by_blocks(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_n: int) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v for one head, reading the keys one block of `block_n` at a time: the online
    softmax loop of FlashAttention in PyTorch (chapter 10). q: (queries, d); k, v: (keys, d) -> (queries, d)."""
    if isinstance(block_n, bool) or not isinstance(block_n, int) or block_n < 1:
        raise ValueError(f"block_n must be a positive integer, got {block_n!r}")
    if q.ndim != 2 or k.ndim != 2 or v.shape[0] != k.shape[0] or q.shape[1] != k.shape[1]:
        raise ValueError(f"expected q (queries, d), k (keys, d), v (keys, d_v); got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    scale = q.shape[-1] ** -0.5
    m = torch.full((q.shape[0],), -math.inf, device=q.device)  # running max per query
    l = torch.zeros(q.shape[0], device=q.device)  # running sum per query, relative to m
    acc = torch.zeros(q.shape[0], v.shape[1], device=q.device)  # running sum of e^(s - m) v, relative to m
    for start in range(0, k.shape[0], block_n):
        s = q @ k[start:start + block_n].T * scale  # (queries, block_n): only one block of scores
        m_new = torch.maximum(m, s.max(dim=-1).values)
        alpha = torch.exp(m - m_new)  # re-express the old sums relative to the new max
        p = torch.exp(s - m_new[:, None])
        l = l * alpha + p.sum(dim=-1)
        acc = acc * alpha[:, None] + p @ v[start:start + block_n]
        m = m_new
    return acc / l[:, None]  # normalize once, at the end
