"""Interactive explorers for live notebooks (Jupyter, Colab): each `*_explorer()` returns an ipywidgets widget
whose callback is a plain function below (`memory_table`, `attention_pattern`, `rope_curves`, `moe_routing`), tested
without a browser. ipywidgets is imported only when an explorer is built: `pip install "llmfs-course[widgets]"`."""

from __future__ import annotations

import math

import torch

from . import zoo
from .counting import count_parameters, kv_cache_bytes
from .moe import MixtureOfExperts, MoE
from .positions import ROPE_SCALINGS, RopeScaling, rope_frequencies

__all__ = ["BALANCINGS", "DTYPES", "MOE_ROUTERS", "PATTERNS", "attention_explorer", "attention_pattern",
           "draw_moe_balancing", "draw_moe_routing", "memory_explorer", "memory_table", "moe_explorer", "moe_routing", "rope_curves",
           "rope_explorer"]

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


# The routers of the MoE explorer, as llmfs.moe.MoE settings (chapter 6): which experts a token goes to and how
# their outputs are weighted. "deepseek" is DeepSeek V3's sigmoid router with a selection-only bias, group-limited.
MOE_ROUTERS = {
    "softmax": dict(router="softmax", norm_topk=False),  # top-k of the softmax, weights left as probabilities
    "softmax_renorm": dict(router="softmax", norm_topk=True),  # Mixtral, Qwen3: the k weights sum to 1
    "deepseek": dict(router="sigmoid", norm_topk=True),  # sigmoid scores, bias + groups choose, scores weigh
}
# Balancing: none; Switch's auxiliary loss (gradient steps on the router); DeepSeek V3's auxiliary-loss-free bias
# updates; a capacity factor (assignments beyond an expert's capacity are dropped).
BALANCINGS = ("none", "aux_loss", "bias_update", "capacity")
_MOE_WIDTH = 16  # d_model of the explorer's toy layer


def _choice(name, value, allowed):
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}.")


def _positive_number(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value == float("inf"):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")


def moe_routing(router: str = "softmax_renorm", balancing: str = "none", n_tokens: int = 64, n_experts: int = 8,
                top_k: int = 2, steps: int = 20, capacity_factor: float = 1.25, n_group: int | None = None,
                topk_group: int | None = None, skew: float = 2.0, rate: float | None = None, seed: int = 0) -> dict:
    """Route `n_tokens` synthetic tokens through a toy `llmfs.moe.MixtureOfExperts` (its own `route`, `kept`,
    `auxiliary_loss` and `after_optimizer_step`), then balance it for `steps` steps.

    Tokens are random vectors plus `skew` times one shared direction, so the router starts out favouring a few
    experts. n_group / topk_group (None: 4 groups, best 2 for "deepseek"; 1 / 1 otherwise) limit the choice to the
    best groups. rate: the aux-loss learning rate or the bias step (None: 0.3 / 0.005).
    Returns per-step `load` ((steps + 1, n_experts) assignments kept per expert; row 0 before balancing; with
    "capacity" row 0 is uncapped, row 1 capped), `imbalance` (max / mean load per row), the final `experts` and
    `weights` ((n_tokens, top_k)), `kept` ((n_tokens, top_k) bool), `dropped`, `capacity` (None without a cap),
    `scores` ((n_tokens, n_experts) router scores) and `selection_bias` (n_experts,).
    """
    _choice("router", router, tuple(MOE_ROUTERS))
    _choice("balancing", balancing, BALANCINGS)
    for name, value in (("n_tokens", n_tokens), ("n_experts", n_experts), ("top_k", top_k), ("steps", steps)):
        _positive(name, value)
    _positive_number("capacity_factor", capacity_factor)
    if isinstance(skew, bool) or not isinstance(skew, (int, float)) or not 0 <= skew < float("inf"):
        raise ValueError(f"skew must be a finite number >= 0, got {skew!r}.")
    if rate is not None:
        _positive_number("rate", rate)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an integer, got {seed!r}.")
    grouped = router == "deepseek" and n_experts % 4 == 0 and top_k <= n_experts // 2
    n_group = n_group if n_group is not None else (4 if grouped else 1)
    topk_group = topk_group if topk_group is not None else (2 if grouped else 1)
    settings = MoE(n_experts=n_experts, top_k=top_k, d_expert=8, n_group=n_group, topk_group=topk_group,
                   capacity_factor=capacity_factor if balancing == "capacity" else None,
                   aux_loss_weight=1.0 if balancing == "aux_loss" else 0.0,
                   bias_update_rate=(rate or 0.005) if balancing == "bias_update" else 0.0, **MOE_ROUTERS[router])
    settings.check(_MOE_WIDTH)  # clear errors: top_k > n_experts, groups that do not divide the experts, ...

    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    layer = MixtureOfExperts(_MOE_WIDTH, settings)
    direction = torch.randn(_MOE_WIDTH, generator=generator)
    tokens = torch.randn(n_tokens, _MOE_WIDTH, generator=generator) + skew * direction / direction.norm()

    def routed():
        layer.eval()
        with torch.no_grad():
            weights, experts, scores, _ = layer.route(tokens)
            kept = layer.kept(experts)
        kept = torch.ones_like(experts, dtype=torch.bool) if kept is None else kept
        return weights, experts, scores, kept

    def load(experts, kept):
        return torch.bincount(experts[kept], minlength=n_experts)

    weights, experts, scores, kept = routed()
    if balancing == "capacity":  # before: the same choices without a cap
        loads = [torch.bincount(experts.reshape(-1), minlength=n_experts), load(experts, kept)]
    else:
        loads = [load(experts, kept)]
        optimizer = torch.optim.SGD(layer.router.parameters(), lr=rate or 0.3) if balancing == "aux_loss" else None
        for _ in range(steps if balancing != "none" else 0):
            layer.train()
            layer(tokens)  # records the load (and, with aux_loss, the loss) as training would
            if optimizer is not None:
                optimizer.zero_grad()
                layer.auxiliary_loss.backward()
                optimizer.step()
            layer.after_optimizer_step()  # DeepSeek V3's bias update (a no-op without bias_update_rate)
            weights, experts, scores, kept = routed()
            loads.append(load(experts, kept))
    load_rows = torch.stack(loads)
    mean = n_tokens * top_k / n_experts
    capacity = None if settings.capacity_factor is None else math.ceil(capacity_factor * n_tokens * top_k / n_experts)
    return {"load": load_rows, "imbalance": (load_rows.max(-1).values / mean).tolist(), "mean_load": mean,
            "experts": experts, "weights": weights, "kept": kept, "dropped": int((~kept).sum()),
            "capacity": capacity, "scores": scores, "selection_bias": layer.selection_bias.clone(),
            "router": router, "balancing": balancing}


def draw_moe_routing(result: dict, axes=None, n_tokens_shown: int = 24):
    """Two panels of a `moe_routing` result: each shown token's weight on each expert (dropped assignments
    outlined in red), and each expert's load before and after balancing against the even share."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(7.5, 3.0), gridspec_kw={"width_ratios": [1, 1.3]})
    grid_ax, load_ax = axes
    experts, weights, kept = result["experts"], result["weights"], result["kept"]
    shown = min(n_tokens_shown, experts.shape[0])
    n_experts = result["load"].shape[1]
    grid = torch.zeros(shown, n_experts).scatter(1, experts[:shown], weights[:shown].float())
    grid_ax.imshow(grid.T.numpy(), cmap="Blues", vmin=0, vmax=max(1.0, float(grid.max())), aspect="auto")
    for token, slot in zip(*torch.where(~kept[:shown])):
        grid_ax.add_patch(Rectangle((int(token) - 0.5, int(experts[token, slot]) - 0.5), 1, 1, fill=False,
                                    edgecolor="red", linewidth=1.2))
    grid_ax.set_xlabel("token", fontsize=9)
    grid_ax.set_ylabel("expert", fontsize=9)
    grid_ax.set_title(f"{result['router']}: routing weights", fontsize=9)
    x = torch.arange(n_experts).float().numpy()
    before, after = result["load"][0].tolist(), result["load"][-1].tolist()
    if result["balancing"] == "none":  # nothing to compare: one bar per expert
        load_ax.bar(x, after, 0.6, color="tab:blue", label="load")
    else:
        load_ax.bar(x - 0.2, before, 0.4, color="lightgray", label="before")
        load_ax.bar(x + 0.2, after, 0.4, color="tab:blue", label=f"after ({result['balancing']})")
    load_ax.axhline(result["mean_load"], color="black", linestyle="--", linewidth=1, label="even share")
    if result["capacity"] is not None:
        load_ax.axhline(result["capacity"], color="red", linestyle=":", linewidth=1.2, label="capacity")
    load_ax.set_xlabel("expert", fontsize=9)
    load_ax.set_ylabel("assignments", fontsize=9)
    change = (f"{result['imbalance'][0]:.2f}" if result["balancing"] == "none" else
              f"{result['imbalance'][0]:.2f} → {result['imbalance'][-1]:.2f}")
    load_ax.set_title(f"load: max/even {change}" + (f", {result['dropped']} dropped" if result["dropped"] else ""),
                      fontsize=9)
    load_ax.set_ylim(0, 1.5 * max(before + after))  # room for the legend above the bars
    load_ax.legend(fontsize=7, ncol=2, loc="upper left")
    load_ax.tick_params(labelsize=8)
    grid_ax.tick_params(labelsize=8)
    return axes


def draw_moe_balancing(runs: dict, capped: dict, axes=None):
    """Left: max/even load after each balancing step, one line per `moe_routing` result in `runs`
    ({method: [results over seeds]}), against no balancing and a perfectly even load. Right: the load a capacity
    factor keeps (`capped`, a "capacity" result) against what the router offered."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(8, 2.8), gridspec_kw={"width_ratios": [1.2, 1]})
    curve_ax, cap_ax = axes
    for (method, results), colour in zip(runs.items(), ("tab:blue", "tab:orange", "tab:green")):
        for i, result in enumerate(results):
            curve_ax.plot(result["imbalance"], color=colour, alpha=0.8, label=method if i == 0 else None)
    starts = [result["imbalance"][0] for results in runs.values() for result in results]
    start = sum(starts) / len(starts)
    curve_ax.axhline(start, color="gray", linestyle="--", linewidth=1, label="no balancing")
    curve_ax.axhline(1.0, color="black", linestyle=":", linewidth=1, label="even")
    curve_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    curve_ax.set_xlabel("balancing step", fontsize=9)
    curve_ax.set_ylabel("max load / even share", fontsize=9)
    curve_ax.legend(fontsize=8)
    offered, kept = capped["load"][0].tolist(), capped["load"][1].tolist()
    x = torch.arange(len(offered)).float().numpy()
    cap_ax.bar(x - 0.2, offered, 0.4, color="lightgray", label="offered")
    cap_ax.bar(x + 0.2, kept, 0.4, color="tab:blue", label="kept")
    cap_ax.axhline(capped["capacity"], color="red", linestyle=":", linewidth=1.2, label="capacity")
    cap_ax.axhline(capped["mean_load"], color="black", linestyle="--", linewidth=1, label="even share")
    cap_ax.set_xlabel("expert", fontsize=9)
    cap_ax.set_title(f"capacity: {capped['dropped']} of {int(sum(offered))} assignments dropped", fontsize=9)
    cap_ax.set_ylim(0, 1.5 * max(offered))
    cap_ax.legend(fontsize=7, ncol=2, loc="upper left")
    for ax in axes:
        ax.tick_params(labelsize=8)
    return axes


def moe_explorer():
    """Pick a router, a balancing method, experts, top-k and steps; see where tokens go and each expert's load."""
    w = _widgets()
    router = w.Dropdown(options=list(MOE_ROUTERS), value="softmax_renorm", description="router")
    balancing = w.Dropdown(options=list(BALANCINGS), value="none", description="balancing")
    n_experts = w.IntSlider(value=8, min=2, max=32, description="experts")
    top_k = w.IntSlider(value=2, min=1, max=8, description="top-k")
    steps = w.IntSlider(value=20, min=1, max=100, description="steps")
    capacity = w.FloatSlider(value=1.25, min=0.25, max=4.0, step=0.25, description="capacity")
    skew = w.FloatSlider(value=2.0, min=0.0, max=4.0, step=0.25, description="skew")
    out = w.Output()

    def update(_=None):
        import matplotlib.pyplot as plt

        out.clear_output(wait=True)
        with out:
            try:
                result = moe_routing(router.value, balancing.value, n_experts=n_experts.value, top_k=top_k.value,
                                     steps=steps.value, capacity_factor=capacity.value, skew=skew.value)
            except ValueError as error:  # e.g. top-k > experts: say why instead of drawing
                print(error)
                return
            draw_moe_routing(result)
            plt.show()

    controls = (router, balancing, n_experts, top_k, steps, capacity, skew)
    for control in controls:
        control.observe(update, names="value")
    update()
    return w.VBox([*controls, out])
