"""Position encodings: learned absolute positions (GPT-2) and rotary embeddings, RoPE (Su et al., 2021).

RoPE rotates each pair of query/key dimensions by an angle proportional to the token's position, so
the dot product of a query at m and a key at n depends only on n - m. Chapter 8 derives it; here is
the implementation every model uses. The pairs are split halves (dimension i with i + head_dim/2), the
layout of Hugging Face checkpoints.
"""

import math

import torch
import torch.nn as nn

from .config import RopeScaling


class LearnedPositions(nn.Module):
    """One trained vector per position, added to the token embeddings (GPT-2)."""

    def __init__(self, config):
        super().__init__()
        self.embedding = nn.Embedding(config.context_length, config.d_model)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:  # (T,) -> (T, d_model)
        return self.embedding(positions)


def rope_frequencies(head_dim: int, base: float = 10000.0, scaling: RopeScaling | None = None) -> torch.Tensor:
    """The rotation speed of each dimension pair, theta_i = base^(-2i/head_dim), shape (head_dim // 2,)."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    return inv_freq if scaling is None else llama3_scaled_frequencies(inv_freq, scaling)


def llama3_scaled_frequencies(inv_freq: torch.Tensor, scaling: RopeScaling) -> torch.Tensor:
    """Llama 3.1's scaling: slow (long-wavelength) pairs divided by `factor`, fast pairs kept, a ramp between."""
    low_freq_wavelen = scaling.original_context_length / scaling.low_freq_factor
    high_freq_wavelen = scaling.original_context_length / scaling.high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / scaling.factor, inv_freq)
    smooth = (scaling.original_context_length / wavelen - scaling.low_freq_factor) / (
        scaling.high_freq_factor - scaling.low_freq_factor
    )
    smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled
    in_between = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
    return torch.where(in_between, smoothed, scaled)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) on the two halves of the last dimension: a 90-degree turn of every pair."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class RotaryPositions(nn.Module):
    """Rotates queries and keys by their positions before attention scores are taken."""

    def __init__(self, config):
        super().__init__()
        inv_freq = rope_frequencies(config.head_dim, config.rope_base, config.rope_scaling)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def cos_sin(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin of every angle, each (T, head_dim), computed in float32."""
        angles = positions.float()[:, None] * self.inv_freq.float()[None, :]  # (T, head_dim // 2)
        angles = torch.cat((angles, angles), dim=-1)  # (T, head_dim): both halves of a pair share an angle
        return angles.cos(), angles.sin()

    def forward(self, q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor):
        """q (B, n_heads, T, head_dim), k (B, n_kv_heads, T, head_dim) -> both rotated."""
        cos, sin = self.cos_sin(positions)
        cos, sin = cos.to(q.dtype), sin.to(q.dtype)
        return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


class NoPositions(nn.Module):
    """No positional signal in this layer: order comes from the causal mask alone (NoPE)."""

    def __init__(self, config):
        super().__init__()

    def forward(self, q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor):
        return q, k


LAYER_POSITIONS = {"rope": RotaryPositions, "none": NoPositions}
