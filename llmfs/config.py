"""Model configuration: a few model-wide sizes, plus one `LayerSpec` per layer made of its mechanisms' settings.

    ModelConfig   vocab_size, context_length, d_model, n_layers, norm, embeddings, ..., layers
      LayerSpec   attention=Attention(...)   ffn=MLP(...)   norm_placement="pre"   positions=Rope(...) or None

Every mechanism owns its settings, next to its module: `Attention` (attention.py), `MLP` (ffn.py), `Rope`
(positions.py). Layers may differ freely; `layer_pattern` builds them from a pattern (some first layers,
then a repeating period), and `replace(n_layers=...)` or `llmfs.zoo.tiny` re-lay the same pattern at any depth.

For a uniform stack, ModelConfig also takes shorthand keywords that set a field in every layer
(n_heads=4, d_ff=512, ffn="swiglu", positions="rope", rope_base=5e5, ...), and reading them back
(`config.n_heads`) works while all layers agree. Real architectures are short configs (see `llmfs.zoo`).
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass

from .attention import Attention
from .ffn import FFN_KINDS, MLP
from .positions import ROPE_SCALINGS, Rope, RopeScaling
from .settings import ConfigError, Settings, boolean, choice, number, positive_int

__all__ = ["ConfigError", "LayerSpec", "ModelConfig", "RopeScaling", "ROPE_SCALINGS", "layer_pattern"]

NORM_KINDS = ("layernorm", "rmsnorm", "offset_rmsnorm")
NORM_PLACEMENTS = ("pre", "post", "post_sublayer", "sandwich")
MODEL_POSITIONS = ("learned", "rope", "none")

# Shorthand keyword -> (LayerSpec slot, field of that slot's settings). Besides these, ModelConfig takes
# ffn= (a name in FFN_KINDS), positions= (MODEL_POSITIONS) and norm_placement= as shorthands.
SHORTHAND = {
    "n_heads": ("attention", "n_heads"),
    "n_kv_heads": ("attention", "n_kv_heads"),
    "head_dim": ("attention", "head_dim"),
    "qk_norm": ("attention", "qk_norm"),
    "qkv_bias": ("attention", "qkv_bias"),
    "attn_out_bias": ("attention", "out_bias"),
    "window": ("attention", "window"),
    "attn_scale": ("attention", "scale"),
    "d_ff": ("ffn", "d_ff"),
    "mlp_bias": ("ffn", "bias"),
    "rope_base": ("positions", "base"),
    "rope_scaling": ("positions", "scaling"),
    "rotary_fraction": ("positions", "fraction"),
}
LAYER_SHORTHAND = ("ffn", "positions", "norm_placement")


@dataclass(frozen=True)
class LayerSpec:
    """What one Transformer block is made of: its attention, its feed-forward network, where its norms go,
    and its positions (a `Rope`, or None: this layer adds no positions). `ffn="swiglu"` and
    `positions="rope"` / `"none"` are accepted as shorthands."""

    attention: Settings = Attention()
    ffn: Settings = MLP()
    norm_placement: str = "pre"
    positions: Rope | None = None

    def __post_init__(self):
        if isinstance(self.ffn, str):
            choice("ffn", self.ffn, tuple(FFN_KINDS))
            object.__setattr__(self, "ffn", MLP(**FFN_KINDS[self.ffn]))
        if isinstance(self.positions, str):
            choice("layer positions", self.positions, ("rope", "none"))
            object.__setattr__(self, "positions", Rope() if self.positions == "rope" else None)
        choice("norm_placement", self.norm_placement, NORM_PLACEMENTS)
        for slot in ("attention", "ffn"):
            if not isinstance(getattr(self, slot), Settings):
                raise ConfigError(f"{slot} must be mechanism settings such as Attention(...) or MLP(...), "
                                  f"got {getattr(self, slot)!r}.")
        if self.positions is not None and not isinstance(self.positions, Rope):
            raise ConfigError(f"positions must be a Rope or None, got {self.positions!r}.")

    def mechanisms(self) -> dict[str, Settings]:
        """The settings of each mechanism in this layer, by slot."""
        out = {"attention": self.attention, "ffn": self.ffn}
        if self.positions is not None:
            out["positions"] = self.positions
        return out

    def resolved(self, d_model: int) -> LayerSpec:
        """A validated copy with derived sizes filled in; errors name the mechanism and the field."""
        done = {}
        for slot, settings in self.mechanisms().items():
            try:
                done[slot] = settings.resolved(d_model)
                if slot == "positions":
                    settings.rotary_dim(done["attention"].rotary_head_dim)
            except ConfigError as error:
                raise ConfigError(f"{slot} ({type(settings).__name__}): {error}") from None
        return dataclasses.replace(self, **done)

    def unresolved(self, d_model: int) -> LayerSpec:
        return dataclasses.replace(self, **{slot: s.unresolved(d_model) for slot, s in self.mechanisms().items()})

    def tiny(self) -> LayerSpec:
        return dataclasses.replace(self, **{slot: s.tiny() for slot, s in self.mechanisms().items()})

    def replace(self, **changes) -> LayerSpec:
        return dataclasses.replace(self, **changes)

    def describe(self, no_positions: str = "NoPE") -> str:
        """One line: `[GQA(32 q / 8 kv, d=128) · RoPE(θ=500000) · SwiGLU(14336)]`, plus a non-pre norm placement."""
        positions = no_positions if self.positions is None else str(self.positions)
        parts = [str(self.attention)] + ([positions] if positions else []) + [str(self.ffn)]
        placement = "" if self.norm_placement == "pre" else f", {self.norm_placement.replace('_', '-')}-norm"
        return f"[{' · '.join(parts)}{placement}]"

    __str__ = describe


GPT2_LAYER = LayerSpec(
    attention=Attention(n_heads=12, qkv_bias=True, out_bias=True),
    ffn=MLP(activation="gelu", gated=False, bias=True),
)


def layer_pattern(n_layers: int, period, first=()) -> tuple[LayerSpec, ...]:
    """`n_layers` specs: the `first` ones, then `period` repeated (cut where the depth ends).

    Every k-th layer different: period = [a] * (k - 1) + [b]. First k different (DeepSeek's dense layers):
    first = [dense] * k, period = [moe]. Three linear to one full (Qwen3-Next): period = [lin] * 3 + [full].
    """
    positive_int("n_layers", n_layers)
    period, first = tuple(period), tuple(first)
    if not period:
        raise ConfigError("layer_pattern needs a period of at least one LayerSpec.")
    if len(first) > n_layers:
        raise ConfigError(f"layer_pattern has {len(first)} first layers but n_layers={n_layers}.")
    if len(period) > n_layers - len(first):
        raise ConfigError(f"layer_pattern's period of {len(period)} layers does not fit in n_layers={n_layers} "
                          f"after {len(first)} first layers; use more layers or a shorter period.")
    return first + tuple(period[i % len(period)] for i in range(n_layers - len(first)))


def find_pattern(layers) -> tuple[tuple[LayerSpec, ...], tuple[LayerSpec, ...]]:
    """The shortest (first, period) that `layer_pattern` turns back into `layers`."""
    ids = [list(dict.fromkeys(layers)).index(spec) for spec in layers]  # each distinct spec as a small int
    n, best = len(ids), (0, len(ids))
    for k in range(n):
        for p in range(1, n - k + 1):
            if k + p >= sum(best):
                break
            if all(ids[i] == ids[k + (i - k) % p] for i in range(k, n)):
                best = (k, p)
                break
    k, p = best
    return tuple(layers[:k]), tuple(layers[k:k + p])


def _runs(layers) -> list[tuple[int, LayerSpec]]:
    out = []
    for spec in layers:
        if out and out[-1][1] == spec:
            out[-1] = (out[-1][0] + 1, spec)
        else:
            out.append((1, spec))
    return out


def describe_layers(layers, no_positions: str = "NoPE") -> list[str]:
    """Lines describing a stack, runs of equal layers collapsed: `32 × [GQA(...) · RoPE(...) · SwiGLU(...)]`,
    and a repeating period as `9 × ( 3 × [...] + 1 × [...] )`."""
    first, period = find_pattern(layers)
    repeats, rest = divmod(len(layers) - len(first), len(period))

    def runs(specs):
        return [f"{n} × {spec.describe(no_positions)}" for n, spec in _runs(specs)]

    if len(period) == 1 or repeats < 2:
        return runs(layers)
    inner = runs(period)
    lines = runs(first) + [f"{repeats} × ( " + inner[0]]
    lines += [" " * (len(str(repeats)) + 3) + "+ " + line for line in inner[1:]]
    lines[-1] += " )"
    return lines + runs(period[:rest])


@dataclass(frozen=True, init=False, repr=False)
class ModelConfig:
    """Model-wide sizes and one LayerSpec per layer. With no `layers`, every layer is GPT-2's block (124M).

    scale_embeddings multiplies token embeddings by √d_model (Gemma); logit_softcap squashes the output
    logits into (-cap, cap) with cap · tanh(logits / cap) (Gemma 2; None: no cap).

    Shorthand keywords (see SHORTHAND, plus ffn=, positions=, norm_placement=) set that field in every
    layer; `positions="learned"` (the default for a shorthand stack) adds GPT-2's learned position table.
    """

    vocab_size: int
    context_length: int
    d_model: int
    n_layers: int
    layers: tuple[LayerSpec, ...]
    norm: str
    norm_eps: float
    learned_positions: bool
    tie_embeddings: bool
    dropout: float
    name: str
    scale_embeddings: bool
    logit_softcap: float | None

    def __init__(self, vocab_size: int = 50257, context_length: int = 1024, d_model: int = 768,
                 n_layers: int | None = None, layers=None, norm: str = "layernorm", norm_eps: float = 1e-5,
                 learned_positions: bool | None = None, tie_embeddings: bool = True, dropout: float = 0.0,
                 name: str = "custom", scale_embeddings: bool = False, logit_softcap: float | None = None,
                 **shorthand):
        unknown = set(shorthand) - set(SHORTHAND) - set(LAYER_SHORTHAND)
        if unknown:
            known = [f.name for f in dataclasses.fields(ModelConfig)] + list(SHORTHAND) + list(LAYER_SHORTHAND)
            close = difflib.get_close_matches(sorted(unknown)[0], known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"ModelConfig has no field {sorted(unknown)[0]!r}.{hint} Fields: {', '.join(known)}.")
        if isinstance(layers, LayerSpec):
            layers = (layers,) * (12 if n_layers is None else n_layers)
        if n_layers is None:
            n_layers = 12 if layers is None else len(layers)
        positive_int("n_layers", n_layers)
        positions = shorthand.pop("positions", None)
        if layers is None:
            layers = (GPT2_LAYER,) * n_layers
            positions = "learned" if positions is None else positions
        if positions is not None:
            choice("positions", positions, MODEL_POSITIONS)
            if learned_positions is None:
                learned_positions = positions == "learned"
        layers = tuple(_with_shorthand(tuple(layers), positions, shorthand))
        values = dict(vocab_size=vocab_size, context_length=context_length, d_model=d_model, n_layers=n_layers,
                      layers=layers, norm=norm, norm_eps=norm_eps,
                      learned_positions=False if learned_positions is None else learned_positions,
                      tie_embeddings=tie_embeddings, dropout=dropout, name=name,
                      scale_embeddings=scale_embeddings, logit_softcap=logit_softcap)
        for field, value in values.items():
            object.__setattr__(self, field, value)
        self._validate()

    def _validate(self) -> None:
        for field in ("vocab_size", "context_length", "d_model", "n_layers"):
            positive_int(field, getattr(self, field))
        choice("norm", self.norm, NORM_KINDS)
        number("norm_eps", self.norm_eps, low=0)
        number("dropout", self.dropout, low=0, low_open=False, high=1, high_open=True)
        boolean("learned_positions", self.learned_positions)
        boolean("tie_embeddings", self.tie_embeddings)
        boolean("scale_embeddings", self.scale_embeddings)
        if self.logit_softcap is not None:
            number("logit_softcap", self.logit_softcap, low=0)
        if not isinstance(self.name, str):
            raise ConfigError(f"name must be a string, got {self.name!r}.")
        if len(self.layers) != self.n_layers:
            raise ConfigError(f"layers has {len(self.layers)} specs but n_layers={self.n_layers}.")
        resolved = {}
        for i, spec in enumerate(self.layers):
            if not isinstance(spec, LayerSpec):
                raise ConfigError(f"layer {i}: expected a LayerSpec, got {type(spec).__name__}.")
            if spec not in resolved:
                try:
                    resolved[spec] = spec.resolved(self.d_model)
                except ConfigError as error:
                    raise ConfigError(f"layer {i}: {error}") from None
        object.__setattr__(self, "layers", tuple(resolved[spec] for spec in self.layers))
        if self.learned_positions and any(spec.positions is not None for spec in self.layers):
            raise ConfigError("positions='learned' cannot be combined with layers that use RoPE.")

    def replace(self, **changes) -> ModelConfig:
        """A copy with some fields changed; shorthand fields change every layer; derived sizes follow.

        A new n_layers re-lays the layers' pattern (see `find_pattern`) at the new depth; layers with no
        repeating pattern need `layers` passed along with a new n_layers.
        """
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if "layers" not in changes:
            layers = tuple(spec.unresolved(self.d_model) for spec in self.layers)
            n_layers = changes.get("n_layers", self.n_layers)
            if n_layers != self.n_layers:
                first, period = find_pattern(layers)
                if len(first) + len(period) == len(layers) and len(layers) > 1:
                    raise ConfigError("this config has per-layer specs with no repeating pattern; "
                                      "pass `layers` along with a new n_layers.")
                layers = layer_pattern(n_layers, period, first)
            values["layers"] = layers
        elif "n_layers" not in changes:
            values["n_layers"] = None
        if "positions" in changes and "learned_positions" not in changes:
            values["learned_positions"] = None
        values.update(changes)
        return ModelConfig(**values)

    def __getattr__(self, name: str):
        """Read a shorthand (config.n_heads, config.rope_base, ...) from the layers, while they agree."""
        if name.startswith("_") or "layers" not in self.__dict__:
            raise AttributeError(name)
        if name not in SHORTHAND and name not in ("ffn", "positions", "norm_placement", "rotary_dim"):
            raise AttributeError(f"ModelConfig has no attribute {name!r}.")
        if name == "positions":
            return "learned" if self.learned_positions else \
                "rope" if any(spec.positions is not None for spec in self.layers) else "none"
        values = set()
        for spec in self.layers:
            if name == "norm_placement":
                values.add(spec.norm_placement)
            elif name == "ffn":
                values.add(getattr(spec.ffn, "kind", type(spec.ffn).__name__))
            elif name == "rotary_dim":
                if spec.positions is not None:
                    values.add(spec.positions.rotary_dim(spec.attention.rotary_head_dim))
            else:
                slot, field = SHORTHAND[name]
                settings = getattr(spec, slot)
                if settings is not None and field in settings.fields():
                    values.add(getattr(settings, field))
                elif slot != "positions":
                    raise AttributeError(f"layer {self.layers.index(spec)}'s {slot} ({type(settings).__name__}) "
                                         f"has no {field}; read config.layers[i].{slot} instead.")
        if len(values) != 1:
            raise AttributeError(f"{name} is not one value for this config's layers ({sorted(map(str, values))}); "
                                 "read it from config.layers[i].")
        return values.pop()

    def __str__(self) -> str:
        embeddings = "tied" if self.tie_embeddings else "untied"
        norm = {"layernorm": "LayerNorm", "rmsnorm": "RMSNorm", "offset_rmsnorm": "RMSNorm(1+w)"}[self.norm]
        extras = ", learned positions" if self.learned_positions else ""
        extras += ", embeddings ×√d_model" if self.scale_embeddings else ""
        extras += f", logits soft-capped at {self.logit_softcap:g}" if self.logit_softcap is not None else ""
        extras += f", dropout {self.dropout:g}" if self.dropout else ""
        head = (f"{self.name}: d_model {self.d_model}, vocab {self.vocab_size}, context {self.context_length}, "
                f"{norm}(eps={self.norm_eps:g}), {embeddings} embeddings{extras}")
        no_positions = "" if self.learned_positions else "NoPE"
        return "\n".join([head] + ["  " + line for line in describe_layers(self.layers, no_positions)])

    __repr__ = __str__


def _with_shorthand(layers: tuple[LayerSpec, ...], positions: str | None, shorthand: dict):
    """The layers with each shorthand keyword applied to every layer whose mechanism has that field."""
    if positions is not None:
        layers = tuple(spec.replace(positions=(spec.positions or Rope()) if positions == "rope" else None)
                       for spec in layers)
    if "ffn" in shorthand:
        kind = shorthand.pop("ffn")
        choice("ffn", kind, tuple(FFN_KINDS))
        layers = tuple(spec.replace(ffn=dataclasses.replace(spec.ffn, **FFN_KINDS[kind])) for spec in layers)
    if "norm_placement" in shorthand:
        placement = shorthand.pop("norm_placement")
        layers = tuple(spec.replace(norm_placement=placement) for spec in layers)
    for key, value in shorthand.items():
        slot, field = SHORTHAND[key]

        def has_field(spec):
            settings = getattr(spec, slot)
            return settings is not None and field in settings.fields()

        if not any(has_field(spec) for spec in layers):
            if slot != "positions":
                raise ConfigError(f"{key}: no layer's {slot} has a field {field!r}.")
            if value != getattr(Rope(), field):
                raise ConfigError(f"{key}={value!r} needs layers with RoPE (positions='rope').")
        layers = tuple(spec.replace(**{slot: dataclasses.replace(getattr(spec, slot), **{field: value})})
                       if has_field(spec) else spec for spec in layers)
    return layers
