"""Model configuration: one validated dataclass describes every architecture in the course.

A model is a stack of blocks; `LayerSpec` says what one block is made of (which attention, which
feed-forward network, where the norms go, which position encoding), and `ModelConfig` holds the sizes
plus one spec per layer. Real architectures are short configs (see `llmfs.zoo`).
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field


class ConfigError(ValueError):
    """A config field holds a value the model cannot be built with."""


def _choice(field_name: str, value, allowed) -> None:
    """Raise a ConfigError naming the field, the value and the allowed values."""
    if value not in allowed:
        close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{field_name}={value!r} is not allowed; choose one of {sorted(map(str, allowed))}.{hint}")


def _positive(field_name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{field_name} must be a positive integer, got {value!r}.")


# The names each mechanism may take; the modules behind them are registered in llmfs.model.
ATTENTION_KINDS = ("multi_head",)
FFN_KINDS = ("gelu_mlp", "swiglu", "geglu")
NORM_KINDS = ("layernorm", "rmsnorm")
NORM_PLACEMENTS = ("pre", "post", "post_sublayer", "sandwich")
MODEL_POSITIONS = ("learned", "rope", "none")
LAYER_POSITIONS = ("rope", "none")
QK_NORMS = (None, "per_head", "full")
ROPE_SCALINGS = ("linear", "ntk", "yarn", "llama3")


@dataclass(frozen=True)
class RopeScaling:
    """RoPE frequencies rescaled for a context `factor` times longer than trained on (chapter 8).

    kind: "linear" (position interpolation), "ntk" (NTK-aware larger base), "yarn" (ramp between kept and
    interpolated pairs, plus an attention factor), "llama3" (Llama 3.1's wavelength-based ramp).
    low/high_freq_factor are Llama 3's; beta_fast/beta_slow and attention_factor (None: 0.1 ln(factor) + 1)
    are YaRN's; original_context_length is used by "yarn" and "llama3".
    """

    kind: str = "llama3"
    factor: float = 8.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_context_length: int = 8192
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    attention_factor: float | None = None

    def __post_init__(self):
        _choice("rope_scaling.kind", self.kind, ROPE_SCALINGS)
        if self.factor < 1:
            raise ConfigError(f"rope_scaling.factor must be >= 1, got {self.factor!r}.")
        if not 0 < self.low_freq_factor < self.high_freq_factor:
            raise ConfigError(
                "rope_scaling needs 0 < low_freq_factor < high_freq_factor, got "
                f"{self.low_freq_factor!r} and {self.high_freq_factor!r}."
            )
        _positive("rope_scaling.original_context_length", self.original_context_length)
        if not 0 < self.beta_slow < self.beta_fast:
            raise ConfigError(
                f"rope_scaling needs 0 < beta_slow < beta_fast, got {self.beta_slow!r} and {self.beta_fast!r}."
            )
        if self.attention_factor is not None and not self.attention_factor > 0:
            raise ConfigError(f"rope_scaling.attention_factor must be positive or None, got {self.attention_factor!r}.")


@dataclass(frozen=True)
class LayerSpec:
    """What one Transformer block is made of."""

    attention: str = "multi_head"
    ffn: str = "gelu_mlp"
    norm_placement: str = "pre"
    positions: str = "none"  # "rope" rotates q and k in this layer; "none" adds nothing here

    def __post_init__(self):
        _choice("attention", self.attention, ATTENTION_KINDS)
        _choice("ffn", self.ffn, FFN_KINDS)
        _choice("norm_placement", self.norm_placement, NORM_PLACEMENTS)
        _choice("layer positions", self.positions, LAYER_POSITIONS)


@dataclass(frozen=True)
class ModelConfig:
    """Sizes and mechanisms of a decoder-only Transformer. The defaults describe GPT-2 (124M).

    Fields left as None are derived: `n_kv_heads = n_heads` (plain multi-head attention),
    `head_dim = d_model // n_heads`, `d_ff = 4 * d_model`. `layers` gives one LayerSpec per layer;
    when empty, every layer is built from `attention`, `ffn`, `norm_placement` and `positions`.
    """

    vocab_size: int = 50257
    context_length: int = 1024
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    n_kv_heads: int | None = None
    head_dim: int | None = None
    d_ff: int | None = None
    attention: str = "multi_head"
    ffn: str = "gelu_mlp"
    norm: str = "layernorm"
    norm_eps: float = 1e-5
    norm_placement: str = "pre"
    positions: str = "learned"  # learned absolute (GPT-2), rotary in every layer (Llama), or none (NoPE)
    rope_base: float = 10000.0
    rope_scaling: RopeScaling | None = None
    rotary_fraction: float = 1.0  # partial RoPE: rotate only this leading fraction of each head's dimensions
    qk_norm: str | None = None  # RMSNorm on q and k: "per_head" (Qwen3) or "full" width, all heads at once (OLMo 2)
    qkv_bias: bool = True
    attn_out_bias: bool = True
    mlp_bias: bool = True
    tie_embeddings: bool = True
    dropout: float = 0.0
    layers: tuple[LayerSpec, ...] = field(default=())
    name: str = "custom"

    def __post_init__(self):
        for name in ("vocab_size", "context_length", "d_model", "n_layers", "n_heads"):
            _positive(name, getattr(self, name))
        _choice("norm", self.norm, NORM_KINDS)
        _choice("positions", self.positions, MODEL_POSITIONS)
        _choice("qk_norm", self.qk_norm, QK_NORMS)
        if self.head_dim is None and self.d_model % self.n_heads:
            raise ConfigError(
                f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}; "
                "change one of them or set head_dim explicitly."
            )
        derived = {
            "n_kv_heads": self.n_heads if self.n_kv_heads is None else self.n_kv_heads,
            "head_dim": self.d_model // self.n_heads if self.head_dim is None else self.head_dim,
            "d_ff": 4 * self.d_model if self.d_ff is None else self.d_ff,
        }
        for name, value in derived.items():
            _positive(name, value)
            object.__setattr__(self, name, value)
        if self.n_heads % self.n_kv_heads:
            raise ConfigError(
                f"n_heads={self.n_heads} is not divisible by n_kv_heads={self.n_kv_heads}: "
                "each key/value head must serve the same number of query heads."
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout!r}.")
        if self.norm_eps <= 0:
            raise ConfigError(f"norm_eps must be positive, got {self.norm_eps!r}.")
        if self.rope_base <= 0:
            raise ConfigError(f"rope_base must be positive, got {self.rope_base!r}.")
        if self.rope_scaling is not None and not isinstance(self.rope_scaling, RopeScaling):
            raise ConfigError(f"rope_scaling must be a RopeScaling or None, got {type(self.rope_scaling).__name__}.")
        if not self.layers:
            object.__setattr__(self, "layers", (self.default_layer(),) * self.n_layers)
        object.__setattr__(self, "layers", tuple(self.layers))
        if len(self.layers) != self.n_layers:
            raise ConfigError(f"layers has {len(self.layers)} specs but n_layers={self.n_layers}.")
        uses_rope = any(spec.positions == "rope" for spec in self.layers)
        if uses_rope and self.head_dim % 2:
            raise ConfigError(f"head_dim={self.head_dim} must be even for RoPE, which rotates pairs of dimensions.")
        if not isinstance(self.rotary_fraction, (int, float)) or isinstance(self.rotary_fraction, bool) \
                or not 0 < self.rotary_fraction <= 1:
            raise ConfigError(f"rotary_fraction must be in (0, 1], got {self.rotary_fraction!r}.")
        rotary = self.head_dim * self.rotary_fraction
        if uses_rope and (abs(rotary - round(rotary)) > 1e-6 or round(rotary) % 2 or round(rotary) == 0):
            raise ConfigError(
                f"rotary_fraction={self.rotary_fraction!r} of head_dim={self.head_dim} gives {rotary:g} rotated "
                "dimensions; RoPE needs a whole, even, nonzero number of them."
            )
        if uses_rope and self.positions == "learned":
            raise ConfigError("positions='learned' cannot be combined with layers that use RoPE.")

    @property
    def rotary_dim(self) -> int:
        """How many leading dimensions of each head RoPE rotates: head_dim, or less under partial RoPE."""
        return round(self.head_dim * self.rotary_fraction)

    def default_layer(self) -> LayerSpec:
        """The block every layer gets unless `layers` says otherwise."""
        return LayerSpec(
            attention=self.attention,
            ffn=self.ffn,
            norm_placement=self.norm_placement,
            positions="rope" if self.positions == "rope" else "none",
        )

    def replace(self, **changes) -> ModelConfig:
        """A copy with some fields changed; sizes derived from others are derived again unless given.

        Layers built from the defaults are rebuilt from the new defaults; a uniform explicit spec is
        repeated for a new `n_layers`; specs that differ by layer must come with a new n_layers.
        """
        base = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        base.update(n_kv_heads=None if self.n_kv_heads == self.n_heads else self.n_kv_heads)
        base.update(head_dim=None if self.head_dim * self.n_heads == self.d_model else self.head_dim)
        base.update(d_ff=None if self.d_ff == 4 * self.d_model else self.d_ff)
        if "layers" not in changes:
            n_layers = changes.get("n_layers", self.n_layers)
            if set(self.layers) == {self.default_layer()}:
                base["layers"] = ()
            elif len(set(self.layers)) == 1:
                base["layers"] = self.layers[:1] * n_layers
            elif n_layers != self.n_layers:
                raise ConfigError("this config has per-layer specs; pass `layers` along with a new n_layers.")
        base.update(changes)
        return ModelConfig(**base)
