"""Trained multi-query associative recall for chapter 9: one mixing layer (linear attention, DeltaNet, Gated
DeltaNet or softmax attention) after the same short causal convolution, trained on `llmfs.tasks.MQARTask`.

The convolution is what Zoology's models and the real Gated DeltaNet layers have: each token also sees the
token before it, so the value token of a pair carries its key, and one mixing layer can write "key -> value"
and look it up when the key comes again (without it, MQAR needs two layers and far more training).
"""

from __future__ import annotations

import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import Attention
from .config import LayerSpec, ModelConfig
from .ffn import MLP
from .linear_attention import LinearAttention
from .model import Transformer
from .tasks import MQARTask, recall_accuracy, train_recall

MIXERS = ("linear", "deltanet", "gated_deltanet", "softmax")


def mixer_settings(kind: str, n_heads: int, head_dim: int, chunk_size: int = 64, output_gate: str | None = None):
    """The settings of one mixing layer: `Attention` for "softmax", else `LinearAttention` of that kind (no
    convolution of its own: the model's shared one comes first)."""
    if kind == "softmax":
        return Attention(n_heads, head_dim=head_dim)
    if kind not in MIXERS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, MIXERS))}, got {kind!r}")
    return LinearAttention(kind, n_heads=n_heads, head_dim=head_dim, conv_size=None, chunk_size=chunk_size,
                           output_gate=output_gate)


class ShortConvLM(nn.Module):
    """Embedding -> causal depthwise convolution over `conv_size` tokens (added to the embedding) -> the blocks
    of `Transformer(config)` -> final norm -> logits. Token ids (B, T) -> logits (B, T, vocab_size)."""

    def __init__(self, config: ModelConfig, conv_size: int = 2):
        super().__init__()
        self.config, self.lm = config, Transformer(config)
        self.conv = nn.Conv1d(config.d_model, config.d_model, conv_size, groups=config.d_model, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.lm.token_embedding(idx)  # (B, T, d_model)
        past = self.conv.kernel_size[0] - 1
        x = x + self.conv(F.pad(x.transpose(1, 2), (past, 0))).transpose(1, 2)  # token i sees i - past .. i
        positions = torch.arange(idx.shape[1], device=idx.device)
        for block in self.lm.blocks:
            x = block(x, positions)
        return self.lm.lm_head(self.lm.final_norm(x))


def recall_model(kind: str, vocab_size: int, d_model: int = 32, n_heads: int = 2, d_ff: int = 64,
                 conv_size: int = 2, context_length: int = 512, output_gate: str | None = None) -> ShortConvLM:
    """One block (mixer `kind` + an MLP) after a short convolution; every kind has the same width d_model."""
    spec = LayerSpec(mixer_settings(kind, n_heads, d_model // n_heads, output_gate=output_gate), MLP(d_ff), positions=None)
    config = ModelConfig(vocab_size=vocab_size, context_length=context_length, d_model=d_model, norm="rmsnorm",
                         layers=(spec,), name=f"MQAR {kind}")
    return ShortConvLM(config, conv_size)


def trained_recall(kinds, n_pairs, seeds, steps: int = 300, n_keys: int = 32, n_values: int = 32,
                   batch_size: int = 32, lr: float = 1e-2, eval_batch: int = 256, **model_kwargs) -> dict:
    """Train one model per kind and seed on a mix of all `n_pairs`, then measure its recall at each.

    Returns {"accuracy": {kind: tensor (len(n_pairs), len(seeds))}, "seconds": {kind: training seconds},
    "chance": 1 / n_values}.
    """
    tasks = [MQARTask(n, n_keys=n_keys, n_values=n_values) for n in n_pairs]
    accuracy, seconds = {}, {}
    for kind in kinds:
        acc = torch.zeros(len(n_pairs), len(seeds))
        start = time.perf_counter()
        for j, seed in enumerate(seeds):
            torch.manual_seed(seed)
            model = recall_model(kind, n_keys + n_values, **model_kwargs)
            train_recall(model, tasks, steps, batch_size, lr, torch.Generator().manual_seed(seed))
            for i, task in enumerate(tasks):
                acc[i, j] = recall_accuracy(model, task, eval_batch, torch.Generator().manual_seed(10**6 + i))
        accuracy[kind], seconds[kind] = acc, time.perf_counter() - start
    return {"accuracy": accuracy, "seconds": seconds, "chance": 1 / n_values}


def plot_recall(ax, n_pairs, accuracy: dict, names: dict, chance: float, title: str = "") -> None:
    """Accuracy against the number of pairs on `ax`: per kind the mean over seeds and a min-max band, and chance.

    accuracy: {kind: tensor (len(n_pairs), n_seeds)}; names: {kind: label}.
    """
    for i, (kind, acc) in enumerate(accuracy.items()):
        ax.plot(n_pairs, acc.mean(1), marker="o", color=f"C{i}", label=names.get(kind, kind))
        ax.fill_between(n_pairs, acc.min(1).values, acc.max(1).values, color=f"C{i}", alpha=0.2)
    ax.axhline(chance, color="gray", ls=":", label=f"chance (1/{round(1 / chance)})")
    ax.set(xscale="log", xlabel="key-value pairs (N)", ylabel="recall accuracy", ylim=(0, 1.05), title=title)
    ax.set_xticks(n_pairs, [str(n) for n in n_pairs])
    ax.minorticks_off()
    ax.grid(alpha=0.3)
