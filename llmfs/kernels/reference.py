"""PyTorch references for the Triton kernels: what each kernel must compute, written the plain way."""

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
