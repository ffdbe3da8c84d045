"""Normalization layers: LayerNorm (GPT-2) and RMSNorm (Llama, Qwen, ...). Chapter 7 compares them."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class LayerNorm(nn.Module):
    """Subtract the mean, divide by the standard deviation, then scale and shift (Ba et al., 2016)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


class RMSNorm(nn.Module):
    """Divide by the root mean square and scale; no mean, no shift (Zhang & Sennrich, 2019).

    Computed in float32 and cast back, as Llama and Qwen do, so bf16 models stay stable.
    """

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


class OffsetRMSNorm(RMSNorm):
    """RMSNorm whose weights are offsets from 1: (1 + w) * x / rms(x), computed in float32 (Gemma).

    The weights start at zero, so weight decay pulls the scale towards 1 rather than towards 0.
    """

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__(dim, eps)
        nn.init.zeros_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (normed * (1.0 + self.weight.float())).to(x.dtype)


NORMS = {"layernorm": LayerNorm, "rmsnorm": RMSNorm, "offset_rmsnorm": OffsetRMSNorm}


def make_norm(config, dim: int | None = None) -> nn.Module:
    """The norm that `config.norm` names, over `dim` features (default: d_model)."""
    return NORMS[config.norm](config.d_model if dim is None else dim, eps=config.norm_eps)
