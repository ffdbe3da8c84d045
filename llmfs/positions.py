"""Position encodings: learned absolute positions (GPT-2), sinusoids (the original Transformer), rotary
embeddings, RoPE (Su et al., 2021), and no positions at all (NoPE).

RoPE rotates each pair of query/key dimensions by an angle proportional to the token's position, so
the dot product of a query at m and a key at n depends only on n - m. Chapter 8 derives it; here is
the implementation every model uses. The model pairs split halves (dimension i with i + rotary_dim/2),
the layout of Hugging Face checkpoints; `apply_rope(..., layout="pairs")` is the interleaved layout of
the RoPE paper and of Meta's original checkpoints, and `halves_from_pairs` converts between them.

Each layer's `Rope` settings choose its base and two options, never the model family:
- partial RoPE: `fraction < 1` rotates only the first `rotary_dim` dimensions of every head;
- context extension: `RopeScaling(kind=...)` rescales the frequencies ("linear" position interpolation,
  "ntk"-aware base change, "yarn", "llama3"); YaRN also scales the attention logits.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from .settings import ConfigError, Settings, boolean, choice, number, positive_int

ROPE_SCALINGS = ("linear", "ntk", "yarn", "llama3")


@dataclass(frozen=True)
class RopeScaling:
    """RoPE frequencies rescaled for a context `factor` times longer than trained on (chapter 8).

    kind: "linear" (position interpolation), "ntk" (NTK-aware larger base), "yarn" (ramp between kept and
    interpolated pairs, plus an attention factor), "llama3" (Llama 3.1's wavelength-based ramp).
    low/high_freq_factor are Llama 3's; beta_fast/beta_slow and attention_factor (None: 0.1 ln(factor) + 1)
    are YaRN's; original_context_length is used by "yarn" and "llama3". mscale and mscale_all_dim are
    DeepSeek's YaRN terms: cos and sin get mscale(mscale) / mscale(mscale_all_dim) and MLA's softmax scale
    mscale(mscale_all_dim)², where mscale(m) = 0.1 m ln(factor) + 1 (both 1: the logits get YaRN's usual factor).
    truncate (YaRN): round the ramp's ends to whole pair indices, as the YaRN paper's code does; gpt-oss keeps
    them fractional (False).
    """

    kind: str = "llama3"
    factor: float = 8.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_context_length: int = 8192
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    attention_factor: float | None = None
    mscale: float | None = None
    mscale_all_dim: float | None = None
    truncate: bool = True

    def __post_init__(self):
        choice("rope_scaling.kind", self.kind, ROPE_SCALINGS)
        boolean("rope_scaling.truncate", self.truncate)
        if not self.truncate and self.kind != "yarn":
            raise ConfigError(f"rope_scaling.truncate=False is a YaRN option; kind={self.kind!r} does not use it.")
        number("rope_scaling.factor", self.factor, low=1, low_open=False)
        for name in ("low_freq_factor", "high_freq_factor", "beta_fast", "beta_slow"):
            number(f"rope_scaling.{name}", getattr(self, name), low=0)
        if not self.low_freq_factor < self.high_freq_factor:
            raise ConfigError(
                "rope_scaling needs 0 < low_freq_factor < high_freq_factor, got "
                f"{self.low_freq_factor!r} and {self.high_freq_factor!r}."
            )
        positive_int("rope_scaling.original_context_length", self.original_context_length)
        if not self.beta_slow < self.beta_fast:
            raise ConfigError(
                f"rope_scaling needs 0 < beta_slow < beta_fast, got {self.beta_slow!r} and {self.beta_fast!r}."
            )
        if self.attention_factor is not None:
            number("rope_scaling.attention_factor", self.attention_factor, low=0)
        for name in ("mscale", "mscale_all_dim"):
            if getattr(self, name) is not None:
                number(f"rope_scaling.{name}", getattr(self, name), low=0, low_open=False)
                if self.kind != "yarn":
                    raise ConfigError(f"rope_scaling.{name} is a YaRN term; kind={self.kind!r} does not use it.")

    def __str__(self) -> str:
        return f"{self.kind}×{self.factor:g}"


@dataclass(frozen=True)
class Rope(Settings):
    """Rotary positions in one layer: the base θ, an optional context-extension scaling, and the fraction of
    each head's dimensions that is rotated (partial RoPE; the rest passes through unchanged).

    A layer without positions (NoPE) has `positions=None` in its LayerSpec instead.
    """

    base: float = 10000.0
    scaling: RopeScaling | None = None
    fraction: float = 1.0

    def check(self, d_model: int) -> None:
        number("rope_base", self.base, low=1)
        if self.scaling is not None and not isinstance(self.scaling, RopeScaling):
            raise ConfigError(f"rope_scaling must be a RopeScaling or None, got {type(self.scaling).__name__}.")
        number("rotary_fraction", self.fraction, low=0, high=1)

    def rotary_dim(self, head_dim: int) -> int:
        """How many leading dimensions of a head of `head_dim` are rotated; must be whole, even and nonzero."""
        rotary = head_dim * self.fraction
        if abs(rotary - round(rotary)) > 1e-6 or round(rotary) % 2 or round(rotary) == 0:
            if self.fraction == 1:
                raise ConfigError(f"head_dim={head_dim} must be even for RoPE, which rotates pairs of dimensions.")
            raise ConfigError(
                f"rotary_fraction={self.fraction!r} of head_dim={head_dim} gives {rotary:g} rotated "
                "dimensions; RoPE needs a whole, even, nonzero number of them."
            )
        if self.scaling is not None and self.scaling.kind == "ntk" and round(rotary) < 4:
            raise ConfigError(f"NTK scaling needs at least 4 rotated dimensions, got {round(rotary)}.")
        return round(rotary)

    def tiny(self) -> Rope:
        if self.scaling is None:
            return self
        return dataclasses.replace(self, scaling=dataclasses.replace(self.scaling, factor=4.0, original_context_length=64))

    def __str__(self) -> str:
        parts = [f"θ={self.base:g}"]
        if self.scaling is not None:
            parts.append(str(self.scaling))
        if self.fraction != 1:
            parts.append(f"{self.fraction:g} of dims")
        return f"RoPE({', '.join(parts)})"


def make_positions(rope: Rope | None, head_dim: int) -> nn.Module:
    """The module that gives queries and keys of `head_dim` their positions: RoPE, or nothing (NoPE)."""
    return NoPositions() if rope is None else RotaryPositions(rope, head_dim)


class LearnedPositions(nn.Module):
    """One trained vector per position, added to the token embeddings (GPT-2)."""

    def __init__(self, config):
        super().__init__()
        self.embedding = nn.Embedding(config.context_length, config.d_model)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:  # (T,) -> (T, d_model)
        return self.embedding(positions)


def sinusoidal_positions(n_positions: int, d_model: int, base: float = 10000.0) -> torch.Tensor:
    """The original Transformer's fixed encodings, (n_positions, d_model): sin in even dims, cos in odd ones.

    Dimension pair i oscillates with frequency base^(-2i/d_model) -- the same frequencies RoPE uses.
    """
    if d_model % 2:
        raise ValueError(f"d_model={d_model} must be even: sinusoids come in (sin, cos) pairs.")
    angles = torch.arange(n_positions).float()[:, None] * rope_frequencies(d_model, base)[None, :]
    out = torch.empty(n_positions, d_model)
    out[:, 0::2], out[:, 1::2] = angles.sin(), angles.cos()
    return out


# --- RoPE frequencies and their context-extension rescalings ------------------------------------------


def rope_frequencies(head_dim: int, base: float = 10000.0, scaling: RopeScaling | None = None) -> torch.Tensor:
    """The rotation speed of each dimension pair, theta_i = base^(-2i/head_dim), shape (head_dim // 2,).

    `head_dim` is the number of rotated dimensions (the rotary dimension under partial RoPE). With a
    `scaling`, the frequencies are rescaled for a longer context (see ROPE_SCALING_FUNCTIONS).
    """
    if head_dim < 2 or head_dim % 2:
        raise ValueError(f"RoPE rotates pairs of dimensions: the rotary dimension must be even and >= 2, got {head_dim}.")
    if scaling is not None:
        return ROPE_SCALING_FUNCTIONS[scaling.kind](head_dim, base, scaling)
    return 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))


def linear_scaled_frequencies(head_dim: int, base: float, scaling: RopeScaling) -> torch.Tensor:
    """Position interpolation (Chen et al., 2023): every frequency divided by `factor`.

    Position m then turns by the angles the unscaled model used at m / factor, so a context `factor`
    times longer is squeezed into the range of angles seen in training.
    """
    return rope_frequencies(head_dim, base) / scaling.factor


def ntk_scaled_frequencies(head_dim: int, base: float, scaling: RopeScaling) -> torch.Tensor:
    """NTK-aware scaling: a larger base, base * factor^(d / (d - 2)).

    The fastest pair (i = 0) keeps its frequency, the slowest is divided by exactly `factor`, and the
    pairs between are stretched less and less the faster they turn. It is what transformers' "dynamic"
    NTK scaling computes for a sequence of `factor` times its original length.
    """
    return rope_frequencies(head_dim, base * scaling.factor ** (head_dim / (head_dim - 2)))


def yarn_ramp(head_dim: int, base: float, scaling: RopeScaling) -> torch.Tensor:
    """YaRN's blend per pair, (head_dim // 2,): 1 keeps the original frequency, 0 interpolates it fully.

    A pair that turns more than `beta_fast` times over the original context is kept; one that turns
    fewer than `beta_slow` times is interpolated; a linear ramp over the pair index joins the two.
    """

    def pair_index(turns):  # the (fractional) pair index that turns `turns` times over the original context
        return head_dim * math.log(scaling.original_context_length / (turns * 2 * math.pi)) / (2 * math.log(base))

    low, high = pair_index(scaling.beta_fast), pair_index(scaling.beta_slow)
    if scaling.truncate:  # whole pair indices
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, head_dim - 1)
    if low == high:
        high += 0.001  # avoid dividing by zero when the ramp is a step
    ramp = ((torch.arange(head_dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    return 1 - ramp


def yarn_scaled_frequencies(head_dim: int, base: float, scaling: RopeScaling) -> torch.Tensor:
    """YaRN (Peng et al., 2023): fast pairs kept, slow pairs interpolated by `factor`, a ramp between.

    The model also multiplies cos and sin by `rope_attention_factor(scaling)` (see RotaryPositions).
    """
    inv_freq = rope_frequencies(head_dim, base)
    keep = yarn_ramp(head_dim, base, scaling)
    return inv_freq / scaling.factor * (1 - keep) + inv_freq * keep


def llama3_scaled_frequencies(head_dim: int, base: float, scaling: RopeScaling) -> torch.Tensor:
    """Llama 3.1's scaling: slow (long-wavelength) pairs are divided by `factor`, fast pairs kept, a smooth ramp between."""
    inv_freq = rope_frequencies(head_dim, base)
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


# kind -> function(head_dim, base, scaling) -> frequencies; the kinds are named in llmfs.config.ROPE_SCALINGS.
ROPE_SCALING_FUNCTIONS = {
    "linear": linear_scaled_frequencies,
    "ntk": ntk_scaled_frequencies,
    "yarn": yarn_scaled_frequencies,
    "llama3": llama3_scaled_frequencies,
}
assert set(ROPE_SCALING_FUNCTIONS) == set(ROPE_SCALINGS), "config.ROPE_SCALINGS and the functions here disagree"


def rope_attention_factor(scaling: RopeScaling | None) -> float:
    """The factor cos and sin are multiplied by: 1, except for YaRN, whose default is 0.1 ln(factor) + 1.

    Scaling both q and k multiplies every attention logit by its square: YaRN's "temperature", which
    sharpens attention that the longer context would otherwise spread thin.
    """
    if scaling is None or scaling.kind != "yarn":
        return 1.0
    if scaling.attention_factor is not None:
        return float(scaling.attention_factor)
    if scaling.mscale and scaling.mscale_all_dim:  # DeepSeek's YaRN
        return yarn_mscale(scaling.factor, scaling.mscale) / yarn_mscale(scaling.factor, scaling.mscale_all_dim)
    return yarn_mscale(scaling.factor)


def yarn_mscale(factor: float, mscale: float = 1.0) -> float:
    """YaRN's magnitude correction 0.1 · mscale · ln(factor) + 1 (1 when the context is not extended)."""
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


def rope_logit_scale(scaling: RopeScaling | None) -> float:
    """The extra factor on MLA's softmax scale: mscale(mscale_all_dim)² under DeepSeek's YaRN, else 1."""
    if scaling is None or not scaling.mscale_all_dim:
        return 1.0
    return yarn_mscale(scaling.factor, scaling.mscale_all_dim) ** 2


# --- rotating queries and keys ---------------------------------------------------------------------------


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) on the two halves of the last dimension: a 90-degree turn of every pair."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """(x0, x1, x2, x3, ...) -> (-x1, x0, -x3, x2, ...): the same 90-degree turn, pairs side by side."""
    x_even, x_odd = x[..., 0::2], x[..., 1::2]
    return torch.stack((-x_odd, x_even), dim=-1).flatten(-2)


ROPE_LAYOUTS = ("halves", "pairs")


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, layout: str = "halves") -> torch.Tensor:
    """Rotate every pair of the last dimension of x (..., T, d) by its angle; cos, sin are (T, d // 2).

    layout "halves" pairs dimension i with i + d/2 (Hugging Face); "pairs" pairs 2i with 2i + 1 (the paper).
    """
    if layout == "halves":
        cos, sin = torch.cat((cos, cos), dim=-1), torch.cat((sin, sin), dim=-1)
        return x * cos + rotate_half(x) * sin
    if layout == "pairs":
        cos, sin = cos.repeat_interleave(2, dim=-1), sin.repeat_interleave(2, dim=-1)
        return x * cos + rotate_pairs(x) * sin
    raise ValueError(f"layout={layout!r} is not a RoPE layout; choose one of {list(ROPE_LAYOUTS)}.")


def halves_from_pairs(dim: int) -> torch.Tensor:
    """The permutation p with x_halves = x_pairs[..., p]: evens first, then odds, (dim,) long.

    Permuting each head's q and k projection rows by p turns weights trained with the interleaved
    layout into weights for the split-halves layout (Hugging Face's conversion of Meta's Llama does this).
    """
    if dim % 2:
        raise ValueError(f"dim={dim} must be even.")
    return torch.cat((torch.arange(0, dim, 2), torch.arange(1, dim, 2)))


class RotaryPositions(nn.Module):
    """Rotates the first `rotary_dim` dimensions of queries and keys by their positions (all of them
    unless the layer's Rope asks for partial RoPE); the rest of each head passes through unchanged."""

    def __init__(self, rope: Rope, head_dim: int):
        super().__init__()
        self.rotary_dim = rope.rotary_dim(head_dim)
        inv_freq = rope_frequencies(self.rotary_dim, rope.base, rope.scaling)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.attention_factor = rope_attention_factor(rope.scaling)
        self._table = None  # (key, table) of positions 0..n-1, built by rotation_tables

    def angles(self, positions: torch.Tensor) -> torch.Tensor:
        """The angle of every pair at every position, (T, rotary_dim // 2), in float32."""
        return positions.float()[:, None] * self.inv_freq.float()[None, :]

    def cos_sin(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin of every angle, each (T, rotary_dim // 2), times the attention factor (YaRN)."""
        angles = self.angles(positions)
        return angles.cos() * self.attention_factor, angles.sin() * self.attention_factor

    def rotation_tables(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, cos) and (-sin, sin) of every angle, each (T, rotary_dim), as `rotate` takes them, read from a
        table of all positions so far: a decode step then costs one lookup instead of angles, cos, sin and cats."""
        n = int(positions.max()) + 1 if positions.numel() else 0
        key = (id(self.inv_freq), self.inv_freq._version, self.attention_factor, dtype, positions.device)
        if self._table is None or self._table[0] != key or self._table[1].shape[0] < n:
            size = max(n, 2 * self._table[1].shape[0] if self._table is not None else 64)
            cos, sin = self.cos_sin(torch.arange(size, device=positions.device))
            cos, sin = cos.to(dtype), sin.to(dtype)
            # (size, 2, rotary_dim): row 0 is (cos, cos), row 1 is (-sin, sin)
            self._table = (key, torch.stack((torch.cat((cos, cos), dim=-1), torch.cat((-sin, sin), dim=-1)), dim=1))
        return self._table[1].index_select(0, positions).unbind(1)

    def forward(self, q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor):
        """q (B, n_heads, T, head_dim), k (B, n_kv_heads, T, head_dim) -> both rotated."""
        cos, signed_sin = self.rotation_tables(positions, q.dtype)  # (T, rotary_dim) each
        r = self.rotary_dim
        if r == q.shape[-1]:
            return rotate(q, cos, signed_sin), rotate(k, cos, signed_sin)
        rotated = [torch.cat((rotate(t[..., :r], cos, signed_sin), t[..., r:]), dim=-1) for t in (q, k)]
        return rotated[0], rotated[1]


def rotate(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """`apply_rope(x, cos, sin)` (split halves) from tables already widened to x's last dimension d:
    cos is (cos, cos) and signed_sin is (-sin, sin), each (T, d). Rolling x by d/2 puts x2 before x1, so
    the product with signed_sin is rotate_half(x) * (sin, sin), bit for bit, without building rotate_half."""
    return x * cos + x.roll(x.shape[-1] // 2, dims=-1) * signed_sin


class NoPositions(nn.Module):
    """No positional signal in this layer: order comes from the causal mask alone (NoPE)."""

    def forward(self, q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor):
        return q, k

