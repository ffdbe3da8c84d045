"""Interactive explorers for live notebooks (Jupyter, Colab): each `*_explorer()` returns an ipywidgets widget
whose callback is a plain function below (`memory_table`, `attention_pattern`, `rope_curves`), tested without a
browser. ipywidgets is imported only when an explorer is built: `pip install "llmfs-course[widgets]"`."""

from __future__ import annotations

import torch

from . import zoo
from .counting import count_parameters, kv_cache_bytes
from .positions import ROPE_SCALINGS, RopeScaling, rope_frequencies

__all__ = ["DTYPES", "PATTERNS", "attention_explorer", "attention_pattern", "memory_explorer", "memory_table",
           "rope_curves", "rope_explorer"]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
          "float8": torch.float8_e4m3fn}
PATTERNS = ("causal", "window", "sinks", "chunked", "sparse_topk")


def _positive(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")


def _dtype(dtype):
    if dtype not in DTYPES:
        raise ValueError(f"unsupported dtype {dtype!r}; choose one of {', '.join(DTYPES)}.")
    return DTYPES[dtype]


def memory_table(models, context: int, batch: int = 1, dtype: str = "bfloat16") -> list[dict]:
    """GiB of weights and of KV cache for each zoo model at `context` tokens × `batch` sequences in `dtype`."""
    if isinstance(models, str):
        models = [models]
    if not models:
        raise ValueError("pick at least one model.")
    unknown = [m for m in models if m not in zoo.names()]
    if unknown:
        raise KeyError(f"unknown zoo model(s) {unknown}; known: {', '.join(zoo.names())}.")
    _positive("context", context)
    _positive("batch", batch)
    torch_dtype = _dtype(dtype)
    itemsize = torch.empty((), dtype=torch_dtype).element_size()
    rows = []
    for name in models:
        config = zoo.get(name)
        rows.append({"model": name, "weights GiB": count_parameters(config).total * itemsize / 2**30,
                     "cache GiB": kv_cache_bytes(config, context, batch, dtype=torch_dtype) / 2**30})
    return rows


def attention_pattern(kind: str, seq_len: int = 32, window: int = 8, sinks: int = 2, chunk: int = 8,
                      top_k: int = 8, seed: int = 0) -> torch.Tensor:
    """The (seq_len, seq_len) boolean mask of which key (column) each query (row) sees, for a pattern in PATTERNS.
    sparse_topk keeps each query's top_k keys under random scores (an indexer stand-in), itself always kept."""
    if kind not in PATTERNS:
        raise ValueError(f"unknown attention pattern {kind!r}; choose one of {', '.join(PATTERNS)}.")
    for name, value in (("seq_len", seq_len), ("window", window), ("chunk", chunk), ("top_k", top_k)):
        _positive(name, value)
    if not isinstance(sinks, int) or isinstance(sinks, bool) or sinks < 0:
        raise ValueError(f"sinks must be an integer >= 0, got {sinks!r}.")
    q = torch.arange(seq_len)[:, None]
    k = torch.arange(seq_len)[None, :]
    causal = k <= q
    if kind == "causal":
        return causal
    if kind == "window":
        return causal & (q - k < window)
    if kind == "sinks":
        return causal & ((q - k < window) | (k < sinks))
    if kind == "chunked":
        return causal & (q // chunk == k // chunk)
    scores = torch.rand(seq_len, seq_len, generator=torch.Generator().manual_seed(seed))
    scores = scores.masked_fill(~causal, -1.0).masked_fill(q == k, 2.0)
    keep = scores.topk(min(top_k, seq_len), dim=-1).indices
    return torch.zeros(seq_len, seq_len, dtype=torch.bool).scatter(1, keep, True) & causal


def receptive_field(mask: torch.Tensor, n_layers: int) -> torch.Tensor:
    """Which positions can reach each query through `n_layers` stacked layers of `mask` (boolean matrix power)."""
    _positive("n_layers", n_layers)
    reach = mask.clone()
    for _ in range(n_layers - 1):
        reach = (reach.float() @ mask.float()) > 0
    return reach


def rope_curves(head_dim: int = 128, base: float = 500_000.0, kind: str | None = "llama3", factor: float = 8.0,
                original_context_length: int = 8192) -> dict[str, torch.Tensor]:
    """RoPE frequencies of each dimension pair, before and after the chosen scaling (kind None: unscaled)."""
    if kind is not None and kind not in ROPE_SCALINGS:
        raise ValueError(f"unknown RoPE scaling {kind!r}; choose None or one of {', '.join(ROPE_SCALINGS)}.")
    original = rope_frequencies(head_dim, base)
    if kind is None:
        return {"original": original, "scaled": original}
    scaling = RopeScaling(kind=kind, factor=factor, original_context_length=original_context_length)
    return {"original": original, "scaled": rope_frequencies(head_dim, base, scaling)}


def _widgets():
    try:
        import ipywidgets
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError('the explorers need ipywidgets: pip install "llmfs-course[widgets]"') from error
    return ipywidgets


def memory_explorer():
    """Pick models, context, batch and dtype; see the weights' and the cache's memory side by side."""
    w = _widgets()
    models = w.SelectMultiple(options=zoo.names(), value=("llama3-8b", "gemma3-27b"), description="models")
    context = w.IntSlider(value=32_768, min=1024, max=131_072, step=1024, description="context")
    batch = w.IntSlider(value=1, min=1, max=64, description="batch")
    dtype = w.Dropdown(options=list(DTYPES), value="bfloat16", description="dtype")
    out = w.Output()

    def update(_=None):
        out.clear_output()
        with out:
            for row in memory_table(list(models.value), context.value, batch.value, dtype.value):
                print(f"{row['model']:>20}: weights {row['weights GiB']:8.1f} GiB   cache {row['cache GiB']:8.2f} GiB")

    for control in (models, context, batch, dtype):
        control.observe(update, names="value")
    update()
    return w.VBox([models, context, batch, dtype, out])


def attention_explorer():
    """Pick a pattern and its sizes; see the mask and what a 4-layer stack can reach."""
    w = _widgets()
    kind = w.Dropdown(options=PATTERNS, value="window", description="pattern")
    window = w.IntSlider(value=8, min=1, max=32, description="window")
    out = w.Output()

    def update(_=None):
        import matplotlib.pyplot as plt

        out.clear_output(wait=True)
        mask = attention_pattern(kind.value, 32, window=window.value, chunk=window.value, top_k=window.value)
        with out:
            fig, axes = plt.subplots(1, 2, figsize=(7, 3.3))
            axes[0].imshow(mask, cmap="Blues")
            axes[0].set_title("mask (query × key)")
            axes[1].imshow(receptive_field(mask, 4), cmap="Greens")
            axes[1].set_title("reach after 4 layers")
            plt.show()

    kind.observe(update, names="value")
    window.observe(update, names="value")
    update()
    return w.VBox([kind, window, out])


def rope_explorer():
    """Pick a scaling method and factor; see each pair's wavelength before and after."""
    w = _widgets()
    kind = w.Dropdown(options=[None, *ROPE_SCALINGS], value="llama3", description="scaling")
    factor = w.FloatSlider(value=8.0, min=1.0, max=32.0, step=1.0, description="factor")
    out = w.Output()

    def update(_=None):
        import matplotlib.pyplot as plt

        out.clear_output(wait=True)
        curves = rope_curves(kind=kind.value, factor=factor.value)
        with out:
            fig, ax = plt.subplots(figsize=(6, 3.3))
            for label, freqs in curves.items():
                ax.semilogy(2 * torch.pi / freqs, label=label)
            ax.set_xlabel("dimension pair")
            ax.set_ylabel("wavelength (tokens)")
            ax.legend()
            plt.show()

    kind.observe(update, names="value")
    factor.observe(update, names="value")
    update()
    return w.VBox([kind, factor, out])
