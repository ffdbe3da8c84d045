"""The architecture gallery: every zoo model's card, features, parameters, cache and FLOPs, generated from its config.

    flops_per_token(config, seq_len)   forward FLOPs of one token that attends to `seq_len` tokens
    features(config)                   what a diff table compares (norms, positions, attention, MoE, vocabulary)
    parameter_rows() / cache_rows()    one row per zoo model: counted vs published totals; KV cache sizes
    flops_rows()                       one row per zoo model: FLOPs per token at 4k and 128k tokens
    model_card(name)                   a text card: the layer pattern, key sizes, what sets the model apart
    diagram_labels(config)             the block diagram's boxes as text, read from the config
    draw_block_diagram(config, ax)     the block diagram drawn; block_diagrams(names) several side by side
"""

from __future__ import annotations

import torch

from . import zoo
from .attention import Attention
from .config import ModelConfig
from .counting import count_parameters, kv_cache_bytes
from .linear_attention import LinearAttention
from .ffn import MLP
from .mla import DSA, MLA
from .moe import MoE

__all__ = ["TIMELINE", "block_diagrams", "cache_rows", "diagram_labels", "draw_block_diagram", "features",
           "flops_per_token", "flops_rows", "model_card", "parameter_rows"]


def _check_config(config) -> None:
    if not isinstance(config, ModelConfig):
        raise TypeError(f"config must be a llmfs.ModelConfig, got {type(config).__name__}.")


def _check_seq_len(seq_len) -> None:
    if not isinstance(seq_len, int) or isinstance(seq_len, bool) or seq_len < 1:
        raise ValueError(f"seq_len must be an integer >= 1 (tokens attended to), got {seq_len!r}.")


def matmul_weights(config: ModelConfig) -> int:
    """Weights one token multiplies by in a forward pass: every matrix it uses (routed experts only for the
    experts it is sent to), the output head included, the embedding lookup and vectors (norms, biases) not."""
    from .model import Transformer

    _check_config(config)
    with torch.device("meta"):
        model = Transformer(config)
    skip = {id(model.token_embedding.weight)}
    if model.position_embedding is not None:
        skip |= {id(p) for p in model.position_embedding.parameters()}
    matrices = sum(p.numel() for p in model.parameters() if p.dim() >= 2 and id(p) not in skip)
    if config.tie_embeddings:  # the head reuses the embedding matrix as a matmul
        matrices += model.token_embedding.weight.numel()
    inactive = sum(m.inactive_parameters() for m in model.modules() if hasattr(m, "inactive_parameters"))
    return matrices - inactive


def attention_flops(attention, seq_len: int) -> int:
    """FLOPs of one query's scores and weighted sum over the keys it sees (2 per multiply-add)."""
    if isinstance(attention, Attention):
        held = seq_len if attention.window is None else min(seq_len, attention.sink_tokens + attention.window)
        return 4 * attention.n_heads * attention.head_dim * held  # q·k and p·v per head
    if isinstance(attention, DSA):  # the indexer scores every key, then MLA over the top-k
        indexer = 2 * attention.index_n_heads * attention.index_head_dim * seq_len
        held = min(seq_len, attention.index_topk)
        return indexer + 2 * attention.n_heads * (attention.qk_head_dim + attention.v_head_dim) * held
    if isinstance(attention, MLA):  # keys and values expanded from the latent (no weight absorption)
        return 2 * attention.n_heads * (attention.qk_head_dim + attention.v_head_dim) * seq_len
    if isinstance(attention, LinearAttention):  # read the state with q, write k vᵀ into it: independent of seq_len
        return 4 * attention.state_values()
    raise TypeError(f"no FLOP count for attention settings {type(attention).__name__}.")


def flops_per_token(config: ModelConfig, seq_len: int) -> int:
    """Forward FLOPs of one token attending to `seq_len` tokens (itself included): 2 per weight it multiplies
    by (`matmul_weights`) plus each layer's attention over the keys it holds (windows and linear layers as
    they are). Norms, activations and softmax are left out (a few FLOPs per width, not per weight)."""
    _check_config(config)
    _check_seq_len(seq_len)
    return 2 * matmul_weights(config) + sum(attention_flops(spec.attention, seq_len) for spec in config.layers)


def flops_rows(names=None, lengths=(4096, 131_072)) -> list[dict]:
    """Forward FLOPs of one token at each context length in `lengths`, per zoo model (`flops_per_token`, with the
    weights counted once per model)."""
    for length in lengths:
        _check_seq_len(length)
    rows = []
    for name in names or zoo.names():
        config = zoo.get(name)
        weights = 2 * matmul_weights(config)
        row = {"model": name}
        for length in lengths:
            row[length] = weights + sum(attention_flops(spec.attention, length) for spec in config.layers)
        rows.append(row)
    return rows


def _attention_kind(attention) -> str:
    if isinstance(attention, DSA):
        return "MLA + DSA"
    if isinstance(attention, MLA):
        return "MLA"
    if isinstance(attention, LinearAttention):
        return attention.kind
    kind = "MHA" if attention.n_kv_heads == attention.n_heads else "MQA" if attention.n_kv_heads == 1 else "GQA"
    return f"{kind} {attention.n_heads}/{attention.n_kv_heads}"


def features(config: ModelConfig) -> dict[str, str]:
    """The architecture choices a diff table compares, as short strings."""
    _check_config(config)
    layers = config.layers
    kinds = sorted({_attention_kind(s.attention) for s in layers})
    windows = sorted({s.attention.window for s in layers if getattr(s.attention, "window", None)})
    n_windowed = sum(bool(getattr(s.attention, "window", None)) for s in layers)
    n_linear = sum(isinstance(s.attention, LinearAttention) for s in layers)
    moes = [s.ffn for s in layers if isinstance(s.ffn, MoE)]
    qk = sorted({str(getattr(s.attention, "qk_norm", None)) for s in layers} - {"None"})
    n_rope = sum(s.positions is not None for s in layers)
    positions = ("learned" if config.learned_positions else
                 "RoPE" if n_rope == len(layers) else "none" if n_rope == 0 else f"RoPE in {n_rope}/{len(layers)}")
    return {
        "norm": f"{config.norm}, {'/'.join(sorted({s.norm_placement for s in layers}))}",
        "qk-norm": ", ".join(qk) or "-",
        "positions": positions,
        "attention": ", ".join(kinds),
        "window": "; ".join([f"{n_windowed}/{len(layers)} layers, {'/'.join(map(str, windows))}"] * bool(windows)
                            + [f"{n_linear}/{len(layers)} linear"] * bool(n_linear)) or "-",
        "MoE": (f"{len(moes)}/{len(layers)} layers, {moes[0].n_experts} experts, top-{moes[0].top_k}, "
                f"{moes[0].n_shared} shared" if moes else "dense"),
        "vocab": f"{config.vocab_size:,}",
        "tied": "yes" if config.tie_embeddings else "no",
        "layers x width": f"{config.n_layers} x {config.d_model}",
    }


def baseline_of(name: str) -> str | None:
    """The model a diff table compares `name` against: GPT-2 (124M) for the other GPT-2 and for Llama 3 8B,
    Llama 3 8B for every later model; None for GPT-2 124M itself."""
    zoo.get(name)  # unknown names: a KeyError listing the known ones
    if name == "gpt2-124m":
        return None
    return "gpt2-124m" if name.startswith("gpt2") or name == "llama3-8b" else "llama3-8b"


def diff(config: ModelConfig, baseline: ModelConfig) -> dict[str, tuple[str, str]]:
    """The features (see `features`) in which `config` differs from `baseline`: {feature: (baseline's, config's)}."""
    ours, theirs = features(config), features(baseline)
    return {key: (theirs[key], value) for key, value in ours.items() if value != theirs[key]}


def parameter_rows(names=None) -> list[dict]:
    """Counted total and active parameters of each zoo model next to the published figures (difference in %).

    The active difference compares like with like: `zoo.active_as_published` leaves out what the publisher does."""
    rows = []
    for name in names or zoo.names():
        count = count_parameters(zoo.get(name))
        published = zoo.PUBLISHED_PARAMETERS.get(name)
        published_active = zoo.PUBLISHED_ACTIVE_PARAMETERS.get(name)
        active_as_published = zoo.active_as_published(name, count)  # counted as the publisher counts it
        rows.append({
            "model": name, "total": count.total, "published": published,
            "diff %": None if published is None else 100 * (count.total - published) / published,
            "active": count.active, "active as published": active_as_published, "published active": published_active,
            "active diff %": None if published_active is None else
            100 * (active_as_published - published_active) / published_active,
        })
    return rows


def cache_rows(names=None, lengths=(32_768, 131_072), dtype=torch.bfloat16) -> list[dict]:
    """KV cache bytes per token (at the longest length, averaged) and in total at each length, per zoo model."""
    rows = []
    for name in names or zoo.names():
        config = zoo.get(name)
        row = {"model": name}
        for length in lengths:
            row[length] = kv_cache_bytes(config, length, dtype=dtype)
        row["per token"] = row[max(lengths)] / max(lengths)
        rows.append(row)
    return rows


def model_card(name: str) -> str:
    """A text card of zoo model `name`: its config (layer pattern and sizes), features, counts and cache."""
    config = zoo.get(name)
    count = count_parameters(config)
    lines = [f"== {name} ==", str(config), ""]
    lines += [f"{key:>14}: {value}" for key, value in features(config).items()]
    baseline = baseline_of(name)
    if baseline is not None:
        changed = diff(config, zoo.get(baseline))
        apart = "; ".join(f"{key} {new}" for key, (_, new) in changed.items() if key != "layers x width")
        lines += [f"{'apart from':>14}: {baseline}: {apart or 'sizes only'}"]
    lines += [f"{'parameters':>14}: {count.total / 1e9:.2f}B total, {count.active / 1e9:.2f}B active",
              f"{'KV @128k':>14}: {kv_cache_bytes(config, 131_072) / 2**30:.2f} GiB (bf16, batch 1)",
              f"{'GFLOPs/token':>14}: {flops_per_token(config, 4096) / 1e9:.1f} at 4k context"]
    return "\n".join(lines)


# When each mechanism appeared (first paper) and zoo models that adopted it; keys cite book/references.bib.
TIMELINE = [
    {"mechanism": "learned positions, post-norm", "year": 2017, "source": "Vaswani et al., Attention Is All You Need", "cite": "vaswani2017"},
    {"mechanism": "pre-norm", "year": 2019, "source": "GPT-2 (Radford et al.)", "cite": "radford2019"},
    {"mechanism": "MQA", "year": 2019, "source": "Shazeer, Fast Transformer Decoding", "cite": "shazeer2019"},
    {"mechanism": "SwiGLU", "year": 2020, "source": "Shazeer, GLU Variants Improve Transformer", "cite": "shazeer2020"},
    {"mechanism": "RoPE", "year": 2021, "source": "Su et al., RoFormer", "cite": "su2021"},
    {"mechanism": "sparse MoE (top-k)", "year": 2017, "source": "Shazeer et al., Outrageously Large Neural Networks", "cite": "shazeer2017"},
    {"mechanism": "GQA", "year": 2023, "source": "Ainslie et al., GQA", "cite": "ainslie2023"},
    {"mechanism": "sliding window", "year": 2020, "source": "Beltagy et al., Longformer", "cite": "beltagy2020"},
    {"mechanism": "MLA", "year": 2024, "source": "DeepSeek-V2", "cite": "deepseekv2"},
    {"mechanism": "QK-norm", "year": 2023, "source": "Dehghani et al., Scaling ViT to 22B", "cite": "dehghani2023"},
]


def adopters(mechanism: str) -> list[str]:
    """Zoo models whose config uses `mechanism` (one of the TIMELINE mechanisms), read from their configs."""
    tests = {
        "learned positions, post-norm": lambda c: c.learned_positions,
        "pre-norm": lambda c: any(s.norm_placement in ("pre", "sandwich") for s in c.layers),
        "MQA": lambda c: any(isinstance(s.attention, Attention) and s.attention.n_kv_heads == 1 for s in c.layers),
        "SwiGLU": lambda c: any(getattr(s.ffn, "kind", None) in ("swiglu", "geglu") or isinstance(s.ffn, MoE)
                                for s in c.layers),
        "RoPE": lambda c: any(s.positions is not None for s in c.layers),
        "sparse MoE (top-k)": lambda c: any(isinstance(s.ffn, MoE) for s in c.layers),
        "GQA": lambda c: any(isinstance(s.attention, Attention) and 1 < s.attention.n_kv_heads < s.attention.n_heads
                             for s in c.layers),
        "sliding window": lambda c: any(getattr(s.attention, "window", None) for s in c.layers),
        "MLA": lambda c: any(isinstance(s.attention, MLA) for s in c.layers),
        "QK-norm": lambda c: any(getattr(s.attention, "qk_norm", None) for s in c.layers),
    }
    if mechanism not in tests:
        raise KeyError(f"unknown mechanism {mechanism!r}; known: {', '.join(tests)}.")
    return [name for name in zoo.names() if tests[mechanism](zoo.get(name))]


_LINEAR_NAMES = {"linear": "linear attn", "deltanet": "DeltaNet", "gated_deltanet": "Gated DeltaNet", "kda": "KDA"}
_PLACEMENT_NAMES = {"pre": "pre-norm", "post": "post-norm", "post_sublayer": "norm after sublayer",
                    "sandwich": "sandwich norm"}
_NORM_NAMES = {"layernorm": "LayerNorm", "rmsnorm": "RMSNorm", "offset_rmsnorm": "RMSNorm(1+w)"}


def _attention_label(attention) -> list[str]:
    """One or two short lines for a layer's attention."""
    if isinstance(attention, MLA):
        line = f"MLA {attention.n_heads} heads, latent {attention.kv_lora_rank}"
        return [line, f"DSA top-{attention.index_topk}"] if isinstance(attention, DSA) else [line]
    if isinstance(attention, LinearAttention):
        v_heads = f"/{attention.n_v_heads}" if attention.n_v_heads not in (None, attention.n_heads) else ""
        return [f"{_LINEAR_NAMES[attention.kind]} {attention.n_heads}{v_heads} heads"]
    extras = [f"window {attention.window}"] if attention.window else []
    extras += ["sinks"] if attention.sinks or attention.sink_tokens else []
    extras += [f"{attention.qk_norm} QK-norm".replace("per_head", "per-head")] if attention.qk_norm else []
    extras += ["out gate"] if attention.output_gate else []
    lines = [f"{_attention_kind(attention)} × {attention.head_dim}"]
    return lines + ([", ".join(extras)] if extras else [])


def _positions_label(positions, learned: bool) -> str:
    if positions is None:
        return "no positions (NoPE)" if not learned else "learned positions (at input)"
    label = f"RoPE θ={positions.base:g}"
    if positions.scaling is not None:
        label += f", {positions.scaling.kind}×{positions.scaling.factor:g}"
    if positions.fraction != 1:
        label += f", {positions.fraction:g} of dims"
    return label


def _ffn_label(ffn) -> str:
    if isinstance(ffn, MoE):
        shared = f" +{ffn.n_shared} shared" if ffn.n_shared else ""
        return f"MoE {ffn.n_experts}×{ffn.d_expert}, top-{ffn.top_k}{shared}"
    if isinstance(ffn, MLP):
        return f"{'SwiGLU' if ffn.activation == 'silu' else 'GeGLU'} {ffn.d_ff}" if ffn.gated else f"MLP {ffn.d_ff}"
    return str(ffn)


def diagram_labels(config: ModelConfig) -> dict:
    """The block diagram as text, read from the config: `embedding` and `head` lines, and one entry per distinct
    layer kind (in order of first use) with its `count`, the 1-based `layers` it sits in and its `lines`."""
    _check_config(config)
    kinds: dict = {}
    for index, spec in enumerate(config.layers):
        kinds.setdefault(spec, []).append(index + 1)
    norm = _NORM_NAMES[config.norm]
    blocks = []
    for spec, layers in kinds.items():
        lines = _attention_label(spec.attention)
        lines += [_positions_label(spec.positions, config.learned_positions), _ffn_label(spec.ffn),
                  f"{norm}, {_PLACEMENT_NAMES[spec.norm_placement]}"]
        blocks.append({"count": len(layers), "layers": layers, "lines": lines})
    embedding = f"embedding {config.vocab_size:,} × {config.d_model:,}"
    extras = (["+ learned positions"] if config.learned_positions else []) + (
        ["× √d_model"] if config.scale_embeddings else [])
    head = f"final {norm}, head {'tied' if config.tie_embeddings else 'untied'}"
    return {"title": f"{config.name or 'model'}: {config.n_layers} layers × {config.d_model}",
            "embedding": [embedding] + extras, "blocks": blocks, "head": [head]}


_KIND_COLOURS = ("#c6dbef", "#fdd0a2", "#c7e9c0", "#dadaeb", "#fcbba1", "#d9d9d9")


def draw_block_diagram(config: ModelConfig, ax=None, fontsize: float = 7.5):
    """Draw `config` as a block diagram on `ax`: embedding at the bottom, one box per layer kind with its count,
    a strip with one cell per layer coloured by kind (the window/global, dense/MoE, linear/full pattern), and
    the final norm and head on top. Every label comes from `diagram_labels(config)`."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch, Rectangle

    labels = diagram_labels(config)
    if ax is None:
        _, ax = plt.subplots(figsize=(2.6, 4.5))
    fig = ax.figure
    box = ax.get_position()
    height_pt = box.height * fig.get_figheight() * 72  # the axes' height in points: text keeps its size

    def frac(points):
        return points / height_pt

    line, gap, pad = 1.3 * fontsize, 0.6 * fontsize, 0.5 * fontsize
    boxes = [("head", labels["head"], "#eeeeee")]
    boxes += [(f"× {block['count']}", [f"{block['count']} × layer"] + block["lines"],
               _KIND_COLOURS[i % len(_KIND_COLOURS)]) for i, block in enumerate(labels["blocks"])][::-1]
    boxes += [("embedding", labels["embedding"], "#eeeeee")]
    ax.text(0.5, 1.0, labels["title"].replace(": ", "\n"), ha="center", va="top", fontsize=fontsize,
            weight="bold", linespacing=1.3, transform=ax.transAxes)
    y = 1.0 - frac(2 * line + gap)
    for tag, lines, colour in boxes:
        height = frac(line * len(lines) + 2 * pad)
        y -= height
        ax.add_patch(FancyBboxPatch((0.03, y), 0.94, height, boxstyle="round,pad=0,rounding_size=0.015",
                                    facecolor=colour, edgecolor="black", linewidth=0.8, transform=ax.transAxes))
        body = lines
        if tag.startswith("×"):  # the count in bold on the box's first line
            ax.text(0.06, y + height - frac(pad), lines[0], ha="left", va="top", fontsize=fontsize, weight="bold",
                    transform=ax.transAxes)
            body = [""] + lines[1:]
        ax.text(0.06, y + height - frac(pad), "\n".join(body), ha="left", va="top", fontsize=fontsize,
                linespacing=1.3, transform=ax.transAxes)
        y -= frac(gap)
    # one cell per layer, coloured by its kind: layer 1 on the left
    kind_of = {layer: i for i, block in enumerate(labels["blocks"]) for layer in block["layers"]}
    width, strip = 0.94 / config.n_layers, frac(1.2 * fontsize)
    y -= strip
    for layer in range(1, config.n_layers + 1):
        ax.add_patch(Rectangle((0.03 + (layer - 1) * width, y), width, strip, transform=ax.transAxes,
                               facecolor=_KIND_COLOURS[kind_of[layer] % len(_KIND_COLOURS)], edgecolor="white",
                               linewidth=0.3))
    ax.text(0.5, y - frac(0.3 * fontsize), f"layers 1 → {config.n_layers}, coloured by kind", ha="center",
            va="top", fontsize=fontsize, transform=ax.transAxes)
    ax.set_axis_off()
    return ax


def block_diagrams(names, width: float = 8.0, height: float = 4.6, fontsize: float = 7.5):
    """The block diagrams of zoo models `names` side by side in one figure `width` inches wide (at most 8)."""
    import matplotlib.pyplot as plt

    if isinstance(names, str):
        names = [names]
    if not names:
        raise ValueError("pick at least one zoo model.")
    if not isinstance(width, (int, float)) or isinstance(width, bool) or not 0 < width <= 8:
        raise ValueError(f"width must be a number of inches in (0, 8], got {width!r}.")
    configs = [zoo.get(name) for name in names]  # unknown names: zoo's KeyError lists the known ones
    fig, axes = plt.subplots(1, len(configs), figsize=(width, height), squeeze=False)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.98, bottom=0.01, wspace=0.06)
    for config, ax in zip(configs, axes[0]):
        draw_block_diagram(config, ax, fontsize=fontsize)
    return fig
