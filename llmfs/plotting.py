"""Plots the chapters share: an attention heatmap, loss curves (one run or several seeds with their spread
against baselines), and the diagram of query heads sharing K/V heads.

Each function returns its matplotlib Figure and never calls `plt.show()`; a notebook shows it
exactly once, as the cell's value.
Pass `ax` to draw into a figure of your own (for example one panel of several).
"""

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import ticker
from matplotlib.patches import Rectangle

from .training import History


def _new_axes(figsize):
    """A fresh single-axes figure, closed at once so that it is displayed only when returned.

    It is made through pyplot because, in a notebook, that activates the inline backend which
    renders a returned Figure as an image (a Figure made without pyplot shows only as text).
    """
    figure, ax = plt.subplots(figsize=figsize, layout="constrained")
    plt.close(figure)
    return ax


def _to_numpy(array):
    """A numpy copy of a tensor (any device, any dtype) or array-like."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu()
        array = array.numpy() if array.dtype == torch.bool else array.float().numpy()
    return np.asarray(array)


def plot_attention(weights, x_labels=None, y_labels=None, ax=None, title=None, masked=None, annotate=False):
    """Heatmap of one (T_q, T_k) attention matrix: row i is how query i spreads over the keys.

    Masked entries (True in `masked`, or non-finite such as -inf scores) are drawn in grey hatching,
    so "masked" and "weight 0" look different. x_labels name the keys, y_labels the queries;
    for a square matrix y_labels defaults to x_labels. `annotate=True` writes each value in its cell.
    """
    weights = _to_numpy(weights).astype(float)
    if weights.ndim != 2:
        raise ValueError(f"weights must be a 2-D (T_q, T_k) matrix, got shape {weights.shape}")
    n_queries, n_keys = weights.shape
    if y_labels is None and x_labels is not None and n_queries == n_keys:
        y_labels = x_labels
    for name, labels, size in (("x_labels", x_labels, n_keys), ("y_labels", y_labels, n_queries)):
        if labels is not None and len(labels) != size:
            raise ValueError(f"{name} has {len(labels)} labels but the matrix has {size} {name[0]} positions")
    hidden = ~np.isfinite(weights)
    if masked is not None:
        masked = _to_numpy(masked)
        if masked.shape != weights.shape or masked.dtype != bool:
            raise ValueError(
                f"masked must be a boolean array of the weights' shape {weights.shape}, "
                f"got {masked.dtype} {masked.shape}"
            )
        hidden |= masked

    ax = ax if ax is not None else _new_axes((1.5 + 0.45 * n_keys, 1.2 + 0.45 * n_queries))
    shown = np.ma.masked_array(weights, mask=hidden)
    image = ax.imshow(shown, cmap="viridis", interpolation="nearest", aspect="auto")
    # Masked pixels are transparent; a grey hatched rectangle behind the image shows through them.
    background = Rectangle((-0.5, -0.5), n_keys, n_queries, facecolor="0.9", edgecolor="0.6", hatch="//", lw=0)
    background.set_zorder(-1)  # below the image
    ax.add_patch(background)
    ax.figure.colorbar(image, ax=ax, fraction=0.05)
    if annotate:
        visible = shown.compressed()
        middle = (visible.min() + visible.max()) / 2 if visible.size else 0.0
        for (i, j), value in np.ndenumerate(weights):
            if not hidden[i, j]:
                color = "black" if value > middle else "white"
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(n_keys), x_labels if x_labels is not None else range(n_keys), rotation=90)
    ax.set_yticks(range(n_queries), y_labels if y_labels is not None else range(n_queries))
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    if title is not None:
        ax.set_title(title)
    return ax.figure


def plot_losses(histories, ax=None, title=None, x="step", log_scale=False, ylabel="loss (nats per token)"):
    """Training (dashed) and validation (solid) loss curves of one `History` or a dict name -> History.

    Runs share a colour per name. x="step" puts optimizer steps on the x axis, x="tokens" the
    number of training tokens seen; log_scale=True makes the loss axis logarithmic.
    """
    if isinstance(histories, History):
        histories = {None: histories}
    if not isinstance(histories, dict) or not histories:
        raise TypeError("histories must be a History or a non-empty dict mapping names to History")
    for name, history in histories.items():
        if not isinstance(history, History):
            raise TypeError(f"histories[{name!r}] must be a History, got {type(history).__name__}")
    x_fields = {"step": ("steps", "step"), "tokens": ("tokens_seen", "tokens seen")}
    if x not in x_fields:
        raise ValueError(f"x must be one of {sorted(x_fields)}, got {x!r}")
    x_field, xlabel = x_fields[x]

    ax = ax if ax is not None else _new_axes((6.4, 4.0))
    for index, (name, history) in enumerate(histories.items()):
        color = f"C{index % 10}"
        prefix = "" if name is None else f"{name} "
        xs = getattr(history, x_field)
        ax.plot(xs, history.train_loss, linestyle="--", color=color, label=f"{prefix}train")
        if history.val_loss:
            ax.plot(xs, history.val_loss, linestyle="-", color=color, label=f"{prefix}val")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if x == "step":
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    if log_scale:
        ax.set_yscale("log")
        # Plain numbers (3, 4, 5) rather than 10^0.5-style labels: losses span well under a decade.
        ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(ticker.FormatStrFormatter("%g"))
    ax.grid(alpha=0.3)
    ax.legend()
    if title is not None:
        ax.set_title(title)
    return ax.figure


def plot_seed_bands(runs, baselines=None, ax=None, title=None, ylabel="validation loss (nats per token)"):
    """Validation loss of several seeds per name: the mean as a line, min to max as a band.

    runs: dict name -> list of `History` (one per seed, same evaluation steps); baselines: dict label ->
    a loss, drawn as a dotted horizontal line, so a reader can see what "learned" means.
    """
    if not isinstance(runs, dict) or not runs:
        raise TypeError("runs must be a non-empty dict mapping names to lists of History")
    ax = ax if ax is not None else _new_axes((6.4, 4.0))
    for index, (name, histories) in enumerate(runs.items()):
        if not histories or not all(isinstance(h, History) and h.val_loss for h in histories):
            raise TypeError(f"runs[{name!r}] must be a non-empty list of History with validation losses")
        losses = np.array([h.val_loss for h in histories])  # (seeds, evaluations)
        steps, color = histories[0].steps, f"C{index % 10}"
        ax.plot(steps, losses.mean(axis=0), color=color, label=f"{name} ({len(histories)} seeds)")
        ax.fill_between(steps, losses.min(axis=0), losses.max(axis=0), color=color, alpha=0.25, linewidth=0)
    for index, (label, value) in enumerate((baselines or {}).items()):
        ax.axhline(value, color="0.3", linestyle=(0, (1, 1 + 2 * index)), linewidth=1.2, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    if title is not None:
        ax.set_title(title)
    return ax.figure


def draw_sharing(n_heads, n_kv_heads, ax=None, title=None):
    """Query heads on top, K/V heads below, a line from each query head to the K/V head it reads (chapter 3)."""
    if not isinstance(n_heads, int) or not isinstance(n_kv_heads, int) or n_kv_heads < 1 or n_heads % n_kv_heads:
        raise ValueError(f"n_heads={n_heads!r} must be a multiple of n_kv_heads={n_kv_heads!r} >= 1")
    ax = ax if ax is not None else _new_axes((4.0, 2.0))
    group = n_heads // n_kv_heads
    for h in range(n_heads):
        kv = h // group
        kv_x = kv * group + (group - 1) / 2  # each K/V head sits under the middle of its group
        ax.plot([h, kv_x], [1, 0], color=f"C{kv % 10}", lw=1.5, zorder=1)
        ax.scatter([h], [1], s=220, marker="s", color=f"C{kv % 10}", zorder=2)
        ax.text(h, 1, f"q{h}", ha="center", va="center", fontsize=8, color="white", zorder=3)
    for kv in range(n_kv_heads):
        kv_x = kv * group + (group - 1) / 2
        ax.scatter([kv_x], [0], s=480, marker="o", color=f"C{kv % 10}", zorder=2)
        ax.text(kv_x, 0, f"kv{kv}", ha="center", va="center", fontsize=8, color="white", zorder=3)
    ax.set_xlim(-0.8, n_heads - 0.2)
    ax.set_ylim(-0.4, 1.4)
    ax.axis("off")
    if title is not None:
        ax.set_title(title, fontsize=10)
    return ax.figure


def draw_design():
    """The design of llmfs on one page: config data on the left, the modules built from it, and what is asked
    of each layer (its cache, its cache size, its parameters). Drawn for the book's "How llmfs is built" page."""
    ax = _new_axes((8, 4.6))
    ax.set(xlim=(0, 100), ylim=(0, 60))
    ax.axis("off")

    def box(x, y, w, h, title, lines, color):
        ax.add_patch(Rectangle((x, y), w, h, facecolor=color, edgecolor="0.3", lw=1))
        ax.text(x + 1.2, y + h - 1.5, title, weight="bold", va="top", fontsize=9.5)
        ax.text(x + 1.2, y + h - 5.5, "\n".join(lines), va="top", fontsize=8.5, family="monospace", linespacing=1.35)

    def arrow(start, end, label=""):
        ax.annotate("", end, start, arrowprops=dict(arrowstyle="->", color="0.35", lw=1.2))
        if label:
            ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 1, label, fontsize=8, ha="center",
                    color="0.25", style="italic")

    ax.text(16, 58.5, "config: data", ha="center", fontsize=10, weight="bold", color="C0")
    ax.text(50, 58.5, "modules: built from it", ha="center", fontsize=10, weight="bold", color="C1")
    ax.text(85, 58.5, "asked of each layer", ha="center", fontsize=10, weight="bold", color="C2")
    box(1, 38, 31, 18, "ModelConfig", ["vocab_size, d_model,", "context_length, norm,", "embeddings, tying",
                                        "layers: LayerSpec × n"], "#dbe9f6")
    box(1, 4, 31, 30, "LayerSpec (one per layer)", ["attention = Attention(...)", "          | MLA(...)",
                                                      "ffn  = MLP(...) | MoE(...)", "norm_placement = 'pre'",
                                                      "positions = Rope(...)", "          | None (NoPE)",
                                                      "", "layer_pattern(n, period,", "              first)"],
        "#dbe9f6")
    box(36, 38, 28, 18, "Transformer(config)", ["token embedding", "Block × n_layers", "final norm, lm_head"],
        "#fde7d4")
    box(36, 4, 28, 30, "Block i", ["Residual[placement](", "  spec.attention", "    .build(config, spec))",
                                   "Residual[placement](", "  spec.ffn.build(config))", "", "each mechanism's",
                                   "module sits next to", "its settings"], "#fde7d4")
    box(68, 38, 31, 18, "model.new_cache(B)", ["one cache per layer,", "made by its attention:",
                                               "K/V, a ring buffer,", "a latent, a state"], "#dcf0dc")
    box(68, 4, 31, 30, "sizes, exact for any mix", ["kv_cache_bytes(config, T)", " = Σ layers",
                                                    "   attention.cache_values(T)", "",
                                                    "count_parameters(config)", " = built on 'meta'", "",
                                                    "print(config): runs of", "equal layers collapsed"], "#dcf0dc")
    arrow((32, 47), (36, 47), "builds")
    arrow((32, 19), (36, 19), "builds")
    arrow((16.5, 38), (16.5, 34))
    arrow((50, 38), (50, 34))
    arrow((64, 47), (68, 47))
    arrow((64, 19), (68, 19))
    return ax.figure


def _draw_placement(ax, title, branch, after_sum=False):
    """One residual block: the stream goes up on the left, the branch (boxes, bottom to top) on the right."""
    ax.set(xlim=(0, 3.2), ylim=(-0.3, 7.4))
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    colors = {"norm": "#f4b183", "f": "#9dc3e6"}
    ax.annotate("", xy=(1, 7.2), xytext=(1, 0), arrowprops=dict(arrowstyle="-|>", lw=2, color="0.35"))
    ax.text(1, -0.15, "x", ha="center", va="top", fontsize=11)
    ax.plot([1, 2.3, 2.3, 1.15], [0.8, 0.8, 5.4, 5.4], color="0.35", lw=1.5, zorder=1)  # the branch
    ys = [1.8 + i * 3.0 / (len(branch) - 1) for i in range(len(branch))] if len(branch) > 1 else [3.2]
    for y, label in zip(ys, branch):
        kind = "f" if label.startswith("f") else "norm"
        ax.text(2.3, y, label, ha="center", va="center", fontsize=10,
                bbox=dict(boxstyle="round,pad=0.35", fc=colors[kind], ec="0.3"), zorder=3)
    ax.text(1, 5.4, "+", ha="center", va="center", fontsize=12, zorder=3,
            bbox=dict(boxstyle="circle,pad=0.15", fc="white", ec="0.3"))
    if after_sum:
        ax.text(1, 6.35, "norm", ha="center", va="center", fontsize=10, zorder=3,
                bbox=dict(boxstyle="round,pad=0.35", fc=colors["norm"], ec="0.3"))


PLACEMENT_DRAWINGS = {
    "post": ("Post-LN (\"post\")\nnorm(x + f(x))", ["f"], True),
    "pre": ("Pre-LN (\"pre\")\nx + f(norm(x))", ["norm", "f"], False),
    "post_sublayer": ("OLMo 2\n(\"post_sublayer\")\nx + norm(f(x))", ["f", "norm"], False),
    "sandwich": ("Gemma (\"sandwich\")\nx + norm(f(norm(x)))", ["norm", "f", "norm"], False),
}


def draw_placements(placements=tuple(PLACEMENT_DRAWINGS)):
    """Chapter 7's picture: one residual block per norm placement, side by side (names as in `norm_placement`)."""
    unknown = [p for p in placements if p not in PLACEMENT_DRAWINGS]
    if unknown or not placements:
        raise ValueError(f"placements must be a non-empty selection of {list(PLACEMENT_DRAWINGS)}, got {placements!r}")
    figure, axes = plt.subplots(1, len(placements), figsize=(2 * len(placements), 3.6), layout="constrained")
    plt.close(figure)
    for ax, placement in zip(np.atleast_1d(axes), placements):
        _draw_placement(ax, *PLACEMENT_DRAWINGS[placement])
    return figure


def plot_sweep(results, x_values, ax=None, title=None, references=None, styles=None, xlabel="learning rate",
               ylabel="final validation loss", log_x=True):
    """One line per variant through `x_values`: the mean over seeds with a band from the lowest to the highest.

    results: dict name -> array-like (len(x_values), n_seeds). references: dict label -> a value drawn as a grey
    horizontal line (chance, a count model). styles: dict name -> keyword arguments for `ax.plot`.
    """
    if not isinstance(results, dict) or not results:
        raise TypeError("results must be a non-empty dict mapping names to (n_x, n_seeds) arrays")
    ax = ax if ax is not None else _new_axes((6.4, 4.0))
    for index, (name, values) in enumerate(results.items()):
        values = _to_numpy(values).astype(float)
        if values.ndim != 2 or values.shape[0] != len(x_values):
            raise ValueError(f"results[{name!r}] must have shape ({len(x_values)}, n_seeds), got {values.shape}")
        style = {"color": f"C{index % 10}", "marker": "o", "ms": 4, **(styles or {}).get(name, {})}
        ax.plot(x_values, values.mean(1), label=name, **style)
        ax.fill_between(x_values, values.min(1), values.max(1), color=style["color"], alpha=0.15, lw=0)
    for index, (label, value) in enumerate((references or {}).items()):
        ax.axhline(value, color="0.5", lw=1, ls=[":", "--", "-."][index % 3], label=label)
    if log_x:
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title is not None:
        ax.set_title(title, fontsize=10)
    return ax.figure


def draw_rope_rotation(q=(1.0, 0.3), k=(0.3, -0.9), theta=0.35, pairs=((1, 3), (5, 7))):
    """Chapter 8's picture: one RoPE pair as 2-D vectors. q at position m turns by mθ, k at position n by nθ;
    each panel is one (m, n) of `pairs`, and the angle between the turned vectors depends only on n − m."""
    figure, axes = plt.subplots(1, len(pairs), figsize=(3.4 * len(pairs), 3.4), layout="constrained")
    plt.close(figure)
    q, k = np.asarray(q, float), np.asarray(k, float)

    def turn(v, angle):
        c, s = np.cos(angle), np.sin(angle)
        return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])

    for ax, (m, n) in zip(np.atleast_1d(axes), pairs):
        for vector, position, color, name in ((q, m, "C0", "q"), (k, n, "C1", "k")):
            ax.annotate("", turn(vector, position * theta), (0, 0),
                        arrowprops=dict(arrowstyle="-|>", color=color, lw=2))
            ax.annotate("", vector, (0, 0), arrowprops=dict(arrowstyle="-|>", color=color, lw=1, ls=":", alpha=0.6))
            tip = turn(vector, position * theta)
            side = 1 if name == "q" else -1  # q's label to the left of its arrow, k's to the right
            normal = side * np.array([-tip[1], tip[0]]) / np.linalg.norm(tip)
            ax.text(*(tip * 1.1 + 0.28 * normal), f"{name} at {position}\n(turned {position}θ)", color=color,
                    fontsize=9, ha="center", va="center")
        dot = turn(q, m * theta) @ turn(k, n * theta)
        ax.set_title(f"m = {m}, n = {n}: n − m = {n - m}\nq·k after turning = {dot:.3f}", fontsize=9)
        ax.set(xlim=(-1.5, 1.5), ylim=(-1.5, 1.5), aspect="equal")
        ax.axhline(0, color="0.85", lw=0.8)
        ax.axvline(0, color="0.85", lw=0.8)
        ax.set_xticks([])
        ax.set_yticks([])
    return figure


# --- several seeds: per-step curves and final values (chapter 3) ---


def plot_step_bands(runs, baselines=None, window=10, ax=None, title=None, ylabel="training loss (nats)"):
    """Per-step losses of several seeds per name, averaged over windows of `window` steps: the mean over
    seeds as a line, min to max as a band; `baselines` (dict label -> value) as dotted lines.

    runs: dict name -> list of per-step loss sequences (one per seed, equally long).
    """
    if not isinstance(runs, dict) or not runs:
        raise TypeError("runs must be a non-empty dict mapping names to lists of per-step losses")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive integer, got {window!r}")
    ax = ax if ax is not None else _new_axes((6.4, 4.0))
    for index, (name, curves) in enumerate(runs.items()):
        lengths = {len(curve) for curve in curves}
        if not curves or len(lengths) != 1 or min(lengths) < window:
            raise ValueError(f"runs[{name!r}] must hold equally long curves of at least window={window} steps")
        losses = np.array([_to_numpy(curve) for curve in curves], dtype=float)  # (seeds, steps)
        n = losses.shape[1] // window
        windows = losses[:, : n * window].reshape(len(curves), n, window).mean(axis=2)  # (seeds, n)
        steps, color = window * np.arange(1, n + 1), f"C{index % 10}"
        ax.plot(steps, windows.mean(axis=0), color=color, label=f"{name} ({len(curves)} seeds)")
        ax.fill_between(steps, windows.min(axis=0), windows.max(axis=0), color=color, alpha=0.25, linewidth=0)
    _draw_baselines(ax, baselines)
    ax.set(xlabel="step", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    return ax.figure


def plot_seed_points(values, baselines=None, ax=None, title=None, ylabel="accuracy"):
    """One column per name: a dot per seed and a bar at their mean; `baselines` (label -> value) as dotted lines."""
    if not isinstance(values, dict) or not values:
        raise TypeError("values must be a non-empty dict mapping names to lists of per-seed numbers")
    ax = ax if ax is not None else _new_axes((4.0, 3.6))
    for index, (name, seeds) in enumerate(values.items()):
        seeds = np.asarray(seeds, dtype=float)
        if seeds.ndim != 1 or seeds.size == 0 or not np.isfinite(seeds).all():
            raise ValueError(f"values[{name!r}] must be a non-empty list of finite numbers, got {seeds!r}")
        color = f"C{index % 10}"
        ax.scatter(np.full(seeds.size, index), seeds, color=color, zorder=3)
        ax.plot([index - 0.25, index + 0.25], [seeds.mean()] * 2, color=color, linewidth=2.5)
    _draw_baselines(ax, baselines)
    ax.set_xticks(range(len(values)), list(values))
    ax.set(ylabel=ylabel, title=title)
    ax.grid(alpha=0.3, axis="y")
    if baselines:
        ax.legend(fontsize=9)
    return ax.figure


def _draw_baselines(ax, baselines):
    for index, (label, value) in enumerate((baselines or {}).items()):
        ax.axhline(value, color="0.3", linestyle=(0, (1, 1 + 2 * index)), linewidth=1.2, label=label)


def plot_receptive_field(reach, title=None, ax=None, layer_names=None):
    """Draw `llmfs.streaming.receptive_field`'s (n_layers + 1, T) boolean grid: the tokens at the bottom, each
    layer above; a filled cell feeds the last position's output (the top right cell)."""
    reach = _to_numpy(reach).astype(bool)
    if reach.ndim != 2:
        raise ValueError(f"reach must be (n_layers + 1, T), got shape {reach.shape}")
    n_rows, T = reach.shape
    ax = ax if ax is not None else _new_axes((7.0, 0.45 * n_rows + 1.0))
    ax.imshow(reach, cmap="Blues", vmin=-0.3, vmax=1.2, origin="lower", aspect="auto")
    ax.set_xticks(np.arange(-0.5, T, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, n_rows, 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=1)
    ax.tick_params(which="minor", length=0)
    names = ["tokens"] + [f"layer {i + 1}" for i in range(n_rows - 1)] if layer_names is None else layer_names
    ax.set_yticks(range(n_rows), names, fontsize=9)
    ax.set_xlabel("position")
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    if title is not None:
        ax.set_title(title, fontsize=10)
    return ax.figure
