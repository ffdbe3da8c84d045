"""Chapter 10's pictures: the tiles of a matmul, the order programs visit them, and FlashAttention's blocks."""

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch, Rectangle

SKIPPED, FULL, MASKED = 0, 1, 2
BLOCK_COLORS = ListedColormap(["#f0f0f0", "#4c72b0", "#dd8452"])


def launch_order(tiles_m: int, tiles_n: int, group_m: int) -> np.ndarray:
    """(tiles_m, tiles_n) array: which program id computes each tile of C, as matmul_kernel maps them."""
    order = np.zeros((tiles_m, tiles_n), dtype=int)
    tiles_per_group = group_m * tiles_n
    for pid in range(tiles_m * tiles_n):
        first = (pid // tiles_per_group) * group_m
        rows = min(tiles_m - first, group_m)
        order[first + (pid % tiles_per_group) % rows, (pid % tiles_per_group) // rows] = pid
    return order


def plot_tiled_matmul(tiles_m: int = 4, tiles_n: int = 4, tiles_k: int = 4, tile=(1, 2), step: int = 1):
    """A @ B = C in tiles: one program's C tile, the A row-panel and B column-panel it reads, and the
    BLOCK_K slice of each that it loads at step `step`."""
    fig, axes = plt.subplots(1, 3, figsize=(8, 2.9), gridspec_kw=dict(width_ratios=[tiles_k, tiles_n, tiles_n]))
    row, col = tile
    panels = [("A (M x K)", tiles_m, tiles_k, [(row, k) for k in range(tiles_k)], (row, step)),
              ("B (K x N)", tiles_k, tiles_n, [(k, col) for k in range(tiles_k)], (step, col)),
              ("C (M x N)", tiles_m, tiles_n, [(row, col)], (row, col))]
    for ax, (title, rows, cols, panel, current) in zip(axes, panels):
        for r in range(rows):
            for c in range(cols):
                color = "#dd8452" if (r, c) == current else "#a1c4e8" if (r, c) in panel else "white"
                ax.add_patch(Rectangle((c, rows - 1 - r), 1, 1, facecolor=color, edgecolor="gray"))
        ax.set(xlim=(0, cols), ylim=(0, rows), title=title, aspect="equal", xticks=[], yticks=[])
    fig.text(0.5, 0.02, f"the program for C tile {tile} reads a row-panel of A and a column-panel of B; "
             f"orange: the tiles it loads at step k = {step}", ha="center", fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def plot_launch_order(tiles_m: int = 8, tiles_n: int = 8, group_m: int = 4):
    """Program ids over the tiles of C: row-major order, then grouped order; the first wave shaded."""
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.8))
    wave = tiles_n                                   # say one wave of programs runs at once
    for ax, group, title in ((axes[0], 1, "row-major"), (axes[1], group_m, f"grouped, GROUP_M = {group_m}")):
        order = launch_order(tiles_m, tiles_n, group)
        ax.imshow(order < wave, cmap=ListedColormap(["white", "#a1c4e8"]), vmin=0, vmax=1)
        for (r, c), pid in np.ndenumerate(order):
            ax.text(c, r, str(pid), ha="center", va="center", fontsize=9)
        rows_a = len({r for (r, c), pid in np.ndenumerate(order) if pid < wave})
        cols_b = len({c for (r, c), pid in np.ndenumerate(order) if pid < wave})
        ax.set(title=f"{title}\nfirst {wave} programs: {rows_a} A + {cols_b} B panels",
               xticks=[], yticks=[])
    fig.tight_layout()
    return fig


def attention_blocks(seq_len: int, block_m: int, block_n: int, causal: bool) -> np.ndarray:
    """(query tiles, key blocks) array of SKIPPED, FULL or MASKED, as flash_attention_kernel visits them."""
    tiles, blocks = math.ceil(seq_len / block_m), math.ceil(seq_len / block_n)
    state = np.full((tiles, blocks), SKIPPED)
    for tile in range(tiles):
        if causal:
            unmasked_end, end = tile * block_m, min((tile + 1) * block_m, seq_len)
        else:
            unmasked_end, end = (seq_len // block_n) * block_n, seq_len
        for start in range(0, unmasked_end, block_n):
            state[tile, start // block_n] = FULL
        for start in range(unmasked_end, end, block_n):
            state[tile, start // block_n] = MASKED
    return state


def plot_attention_blocks(seq_len: int, block_m: int, block_n: int):
    """Which (query tile, key block) pairs FlashAttention computes, without and with the causal mask."""
    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    for ax, causal in zip(axes, (False, True)):
        state = attention_blocks(seq_len, block_m, block_n, causal)
        ax.imshow(state, cmap=BLOCK_COLORS, vmin=0, vmax=2)
        ax.set_xticks(np.arange(state.shape[1] + 1) - 0.5, minor=True)
        ax.set_yticks(np.arange(state.shape[0] + 1) - 0.5, minor=True)
        ax.grid(which="minor", color="white", lw=1)
        visited = (state != SKIPPED).sum()
        ax.set(xlabel=f"key block ({block_n} keys)", ylabel=f"query tile ({block_m} queries)", xticks=[], yticks=[],
               title=f"{'causal' if causal else 'no mask'}: {visited} of {state.size} blocks")
    fig.legend(handles=[Patch(color=BLOCK_COLORS(i), label=label) for i, label in
                        ((FULL, "computed, no mask"), (MASKED, "computed with mask"), (SKIPPED, "skipped"))],
               loc="lower center", ncol=3, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig
