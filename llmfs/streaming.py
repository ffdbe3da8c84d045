"""Chapter 5's experiments with sliding windows: passkey retrieval at a distance, attention sinks, streaming.

- `passkey_config` / `train_passkey` / `passkey_accuracy`: tiny models whose layers are local (a sliding window)
  or global, trained to fetch a passkey from far back (`llmfs.tasks.PasskeyTask`);
- `with_window`: the same weights under another window and number of kept sink tokens (StreamingLLM);
- `loss_by_position`: the next-token loss at each position, averaged over sequences.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from .attention import Attention
from .config import LayerSpec, ModelConfig
from .ffn import MLP
from .model import Transformer
from .positions import Rope
from .tasks import PasskeyTask


def passkey_config(task: PasskeyTask, pattern: str, window: int, d_model: int = 32, n_heads: int = 2,
                   sinks: bool = False) -> ModelConfig:
    """A tiny model for `task`, one layer per letter of `pattern`: "L" a sliding window of `window` tokens,
    "G" global attention; RoPE in every layer, an MLP of twice the width."""
    if not isinstance(pattern, str) or not pattern or set(pattern) - {"L", "G"}:
        raise ValueError(f"pattern must be a non-empty string of 'L' (local) and 'G' (global), got {pattern!r}.")
    kinds = {kind: LayerSpec(Attention(n_heads, window=window if kind == "L" else None, sinks=sinks),
                             MLP(2 * d_model), positions=Rope()) for kind in "LG"}
    return ModelConfig(vocab_size=task.vocab_size, context_length=task.length, d_model=d_model,
                       n_layers=len(pattern), layers=tuple(kinds[kind] for kind in pattern), norm="rmsnorm",
                       name=f"passkey {pattern} (window {window})")


def _train(config: ModelConfig, batches, loss_of, steps: int, seed: int, lr: float, weight_decay: float,
           device: str) -> Transformer:
    """Train `Transformer(config)` from seed `seed` for `steps` AdamW steps (one-cycle schedule) on the batches
    `batches(generator)` gives, minimising `loss_of(model, batch)`; the model in eval mode."""
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}.")
    torch.manual_seed(seed)
    model = Transformer(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    data = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        loss = loss_of(model, batches(data))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval()


def _check_batch_size(batch_size) -> None:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")


def train_passkey(config: ModelConfig, task: PasskeyTask, steps: int, seed: int, batch_size: int = 64,
                  lr: float = 3e-3, device: str = "cpu") -> Transformer:
    """Train `Transformer(config)` from seed `seed` to answer the passkey at the last position (AdamW, one-cycle
    schedule); the distances of the key are drawn uniformly. Returns the model in eval mode."""
    _check_batch_size(batch_size)

    def loss_of(model, batch):
        ids, keys = batch
        logits = model(ids.to(device))[:, -1]  # (B, V): the answer comes after the query token
        return F.cross_entropy(logits, keys.to(device))

    return _train(config, lambda g: task.batch(batch_size, generator=g), loss_of, steps, seed, lr, 0.0, device)


@torch.no_grad()
def passkey_accuracy(model, task: PasskeyTask, distances, n_sequences: int = 128, seed: int = 10**6) -> torch.Tensor:
    """Accuracy (len(distances),) of the answer at the last position, on `n_sequences` held-out sequences per
    distance (the same sequences for every model)."""
    device = next(model.parameters()).device
    out = []
    for distance in distances:
        ids, keys = task.batch(n_sequences, distance=int(distance), generator=torch.Generator().manual_seed(seed))
        out.append((model(ids.to(device))[:, -1].argmax(-1).cpu() == keys).float().mean())
    return torch.stack(out)


@torch.no_grad()
def with_window(model, window: int | None, sink_tokens: int = 0) -> Transformer:
    """A copy of `model` (same weights) whose every attention layer has `window` and keeps `sink_tokens`."""
    layers = tuple(spec.replace(attention=dataclasses.replace(spec.attention, window=window, sink_tokens=sink_tokens))
                   for spec in model.config.layers)
    copy = Transformer(model.config.replace(layers=layers))
    copy.load_state_dict(model.state_dict())
    return copy.to(next(model.parameters()).device).eval()


@torch.no_grad()
def loss_by_position(model, ids: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
    """The loss at each position, averaged over the B sequences: of `targets` (B, T) given `ids` (B, T), shape
    (T,); or without targets, of each next token of `ids`, shape (T - 1,)."""
    device = next(model.parameters()).device
    if targets is None:
        ids, targets = ids[:, :-1], ids[:, 1:]
    logits = model(ids.to(device))  # (B, T, V)
    losses = F.cross_entropy(logits.flatten(0, 1), targets.to(device).flatten(), reduction="none")
    return losses.view(ids.shape[0], -1).mean(0).cpu()


def train_on_task(config: ModelConfig, task, steps: int, seed: int, batch_size: int = 32, lr: float = 3e-3,
                  device: str = "cpu") -> Transformer:
    """Train `Transformer(config)` from seed `seed` on `task.batch(batch_size, generator=g)` pairs of (ids,
    targets), each (B, T), with the loss at every position (AdamW, one-cycle schedule); the model in eval mode."""
    _check_batch_size(batch_size)

    def loss_of(model, batch):
        ids, targets = batch
        logits = model(ids.to(device))  # (B, T, V)
        return F.cross_entropy(logits.flatten(0, 1), targets.to(device).flatten())

    return _train(config, lambda g: task.batch(batch_size, generator=g), loss_of, steps, seed, lr, 0.1, device)


def receptive_field(pattern: str, window: int, T: int) -> torch.Tensor:
    """(len(pattern) + 1, T) boolean: row l is True at the positions whose input to layer l + 1 (row 0: the
    tokens themselves) can reach the last position's output through the layers `pattern` ("L" a sliding
    window of `window` tokens, "G" global attention). Each local layer reaches window - 1 positions further back."""
    if not isinstance(pattern, str) or set(pattern) - {"L", "G"}:
        raise ValueError(f"pattern must be a string of 'L' (local) and 'G' (global), got {pattern!r}.")
    for name, value in (("window", window), ("T", T)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    reach = torch.zeros(len(pattern) + 1, T, dtype=torch.bool)
    earliest = T - 1  # the earliest position that still reaches the last output
    reach[len(pattern), earliest:] = True
    for layer in range(len(pattern) - 1, -1, -1):
        earliest = 0 if pattern[layer] == "G" else max(0, earliest - (window - 1))
        reach[layer, earliest:] = True
    return reach


def decode_step_seconds(contexts, window: int, d_model: int = 256, n_heads: int = 8, rounds: int = 5) -> dict:
    """Best seconds of one decode step of one attention layer over `contexts` cached tokens, full attention and
    a sliding window of `window`, the two interleaved (`llmfs.bench.best_seconds`, one thread).
    Returns {"full": [...], "window": [...]}, one time per context."""
    from .bench import best_seconds
    from .cache import KVLayerCache, WindowLayerCache

    torch.manual_seed(0)
    layers = {}
    for name, w in (("full", None), ("window", window)):
        config = ModelConfig(vocab_size=8, context_length=max(contexts) + 1, d_model=d_model, n_layers=1,
                             norm="rmsnorm", layers=LayerSpec(Attention(n_heads, window=w), MLP(d_model),
                                                              positions=Rope()))
        layers[name] = Transformer(config).blocks[0].attention.sublayer.eval()
    head_dim = d_model // n_heads
    out = {"full": [], "window": []}
    for S in contexts:
        k, v = torch.randn(2, 1, n_heads, S, head_dim).unbind(0)
        full_cache = KVLayerCache(1)
        full_cache.reserve(S + 1)
        full_cache.update(k, v)
        window_cache = WindowLayerCache(1, window)
        window_cache.update(k, v)  # keeps the last `window` tokens
        x, position = torch.randn(1, 1, d_model), torch.tensor([S])

        def step(name, cache):
            def run():
                saved = cache.tensors, cache.length, getattr(cache, "positions", None)
                with torch.no_grad():
                    layers[name](x, position, cache=cache)
                cache.tensors, cache.length = saved[:2]
                if saved[2] is not None:
                    cache.positions = saved[2]
            return run

        best = best_seconds({"full": step("full", full_cache), "window": step("window", window_cache)}, rounds)
        for name in out:
            out[name].append(best[name])
    return out
