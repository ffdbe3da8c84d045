"""Exercises of chapter 8 (Positions: RoPE, NoPE, context extension): reference solutions and their random inputs."""

import torch

from llmfs.config import RopeScaling
from llmfs.exercises import Exercise, register
from llmfs.positions import apply_rope as _apply_rope
from llmfs.positions import rope_frequencies as _rope_frequencies
from llmfs.positions import sinusoidal_positions as _sinusoidal_positions


def _even(gen, low=1, high=33) -> int:
    return 2 * int(torch.randint(low, high, (1,), generator=gen))


def _base(gen) -> float:
    return float([10000.0, 500000.0, 100.0][int(torch.randint(0, 3, (1,), generator=gen))])


def reference_rope_frequencies(head_dim: int, base: float) -> torch.Tensor:
    return _rope_frequencies(head_dim, base)


def reference_apply_rope(x: torch.Tensor, positions: torch.Tensor, base: float) -> torch.Tensor:
    angles = positions.float()[:, None] * _rope_frequencies(x.shape[-1], base)[None, :]
    return _apply_rope(x, angles.cos(), angles.sin())


def reference_sinusoidal_positions(n_positions: int, d_model: int) -> torch.Tensor:
    return _sinusoidal_positions(n_positions, d_model)


def reference_interpolated_angles(positions: torch.Tensor, head_dim: int, base: float, factor: float) -> torch.Tensor:
    inv_freq = _rope_frequencies(head_dim, base, RopeScaling("linear", factor=factor))
    return positions.float()[:, None] * inv_freq[None, :]


def reference_ntk_frequencies(head_dim: int, base: float, factor: float) -> torch.Tensor:
    return _rope_frequencies(head_dim, base, RopeScaling("ntk", factor=factor))


def _apply_rope_cases(gen):
    cases = []
    for _ in range(5):
        T, d = int(torch.randint(1, 12, (1,), generator=gen)), _even(gen, 1, 9)
        positions = torch.randint(0, 200, (T,), generator=gen)
        cases.append((torch.randn(T, d, generator=gen), positions, _base(gen)))
    return cases


register(Exercise(
    id="ch08.rope_frequencies",
    summary="theta_i = base^(-2i/head_dim) for each of the head_dim // 2 dimension pairs.",
    reference=reference_rope_frequencies,
    cases=lambda gen: [(_even(gen), _base(gen)) for _ in range(6)],
))

register(Exercise(
    id="ch08.apply_rope",
    summary="Rotate each split-halves pair of x (T, d) by position * theta_i.",
    reference=reference_apply_rope,
    cases=_apply_rope_cases,
))

register(Exercise(
    id="ch08.sinusoidal_positions",
    summary="The original Transformer's table: sin in even dimensions, cos in odd ones.",
    reference=reference_sinusoidal_positions,
    cases=lambda gen: [(int(torch.randint(1, 40, (1,), generator=gen)), _even(gen)) for _ in range(5)],
))

register(Exercise(
    id="ch08.position_interpolation",
    summary="RoPE angles (T, head_dim // 2) with positions squeezed by `factor` (position interpolation).",
    reference=reference_interpolated_angles,
    cases=lambda gen: [
        (torch.randint(0, 8000, (int(torch.randint(1, 10, (1,), generator=gen)),), generator=gen), _even(gen),
         _base(gen), float(torch.randint(1, 17, (1,), generator=gen)))
        for _ in range(5)
    ],
))

register(Exercise(
    id="ch08.ntk_frequencies",
    summary="NTK-aware scaling: RoPE frequencies with the base raised to base * factor^(d / (d - 2)).",
    reference=reference_ntk_frequencies,
    cases=lambda gen: [(_even(gen, 2, 33), _base(gen), float(torch.randint(1, 33, (1,), generator=gen)))
                       for _ in range(5)],
))


# --- ALiBi: a position kind with no rotation at all ---------------------------------------------------


def reference_alibi_bias(n_heads: int, seq_len: int) -> torch.Tensor:
    """(n_heads, T, T): -slope_h * (i - j) for keys j <= i, -inf above the diagonal; slope_h = 2^(-8h/n_heads)."""
    slopes = 2.0 ** (-8.0 * torch.arange(1, n_heads + 1, dtype=torch.float32) / n_heads)     # (H,)
    i = torch.arange(seq_len)
    distance = (i[:, None] - i[None, :]).float()                                               # (T, T), i - j
    bias = -slopes[:, None, None] * distance                                                   # (H, T, T)
    return bias.masked_fill(distance < 0, float("-inf"))


register(Exercise(
    id="ch08.alibi_bias",
    summary="ALiBi's causal bias: -slope_h * (query - key) with slopes 2^(-8h/H), -inf for future keys.",
    reference=reference_alibi_bias,
    cases=lambda gen: [(int(torch.randint(1, 9, (1,), generator=gen)), int(torch.randint(1, 20, (1,), generator=gen)))
                       for _ in range(5)] + [(8, 6)],
))


# --- which RoPE pairs meet new angles past the training length ----------------------------------------


def reference_unseen_pairs(head_dim: int, base: float, train_len: int) -> torch.Tensor:
    """Boolean (head_dim // 2,): pairs whose wavelength 2π/θ_i exceeds train_len (no full turn in training)."""
    return 2 * torch.pi / _rope_frequencies(head_dim, base) > train_len


register(Exercise(
    id="ch08.unseen_pairs",
    summary="Mark the RoPE pairs that never complete a turn within the training length.",
    reference=reference_unseen_pairs,
    cases=lambda gen: [(_even(gen), _base(gen), int(torch.randint(4, 5000, (1,), generator=gen))) for _ in range(6)]
                      + [(128, 500000.0, 8192), (16, 10000.0, 32)],
))
