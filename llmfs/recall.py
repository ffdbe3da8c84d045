"""Multi-query associative recall (MQAR, Arora et al., 2023): a task where attention capacity matters.

A sequence lists `n_pairs` key-value pairs, then asks for the values of the keys in a random order:

    k3 v7 k1 v2 k9 v4 ... | k1 → v2   k9 → v4   k3 → v7 ...

Each answer must be fetched from the right earlier position, so a model whose keys and values are
squeezed (fewer K/V heads, a narrower latent) has less room to store the pairs. Chapter 4 trains
attention variants on it at matched KV-cache budgets. The sequences come from `llmfs.tasks.MQARTask`
(the one MQAR generator, also used by chapter 9); this module adds chapter 4's trainer and held-out metrics.
"""

from __future__ import annotations

import math

import torch

from .attention import Attention
from .config import LayerSpec, ModelConfig
from .ffn import MLP
from .model import Transformer
from .positions import Rope
from .tasks import IGNORE, MQARTask


def recall_task(vocab_size: int, n_pairs: int) -> MQARTask:
    """The MQAR task (`llmfs.tasks.MQARTask`) a model of `vocab_size` tokens trains on: half keys, half values."""
    n_keys = vocab_size // 2
    return MQARTask(n_pairs=n_pairs, n_keys=n_keys, n_values=vocab_size - n_keys)


def train_recall(config, steps: int, n_pairs: int, seed: int, batch_size: int = 64, lr: float = 3e-3,
                 device: str = "cpu") -> dict:
    """Train `Transformer(config)` on MQAR from seed `seed`: its held-out `recall_metrics`, the model, and the
    training loss of every step ("losses").

    config.vocab_size must be n_keys + n_values (n_keys = n_values = vocab_size // 2).
    """
    torch.manual_seed(seed)
    task = recall_task(config.vocab_size, n_pairs)
    model = Transformer(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    data = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        ids, targets = task.batch(batch_size, data)
        ids, targets = ids.to(device), targets.to(device)
        loss = torch.nn.functional.cross_entropy(model(ids).flatten(0, 1), targets.flatten(), ignore_index=-100)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return {**recall_metrics(model.eval(), n_pairs), "model": model, "losses": losses}


def recall_metrics(model, n_pairs: int, n_sequences: int = 512) -> dict:
    """Loss and accuracy on the recalled values of `n_sequences` fixed held-out MQAR sequences, and the loss
    of a uniform guess among the values (chance)."""
    task = recall_task(model.config.vocab_size, n_pairs)
    ids, targets = task.batch(n_sequences, torch.Generator().manual_seed(10**6))
    device = next(model.parameters()).device
    with torch.no_grad():
        logits = model(ids.to(device)).cpu()
    asked = targets != IGNORE
    return {"loss": torch.nn.functional.cross_entropy(logits[asked], targets[asked]).item(),
            "accuracy": (logits[asked].argmax(-1) == targets[asked]).float().mean().item(),
            "chance_loss": math.log(task.n_values)}


def sharing_config(n_kv_heads: int, n_heads: int = 8, head_dim: int = 4, vocab_size: int = 32, d_model: int = 64,
                   n_layers: int = 2) -> ModelConfig:
    """Chapter 3's recall model: `n_layers` layers of `n_heads` query heads of `head_dim`, sharing `n_kv_heads`
    K/V heads. The heads are narrow on purpose, so what the K/V heads can hold per token limits recall."""
    return ModelConfig(vocab_size=vocab_size, context_length=64, d_model=d_model, n_layers=n_layers, norm="rmsnorm",
                       layers=LayerSpec(Attention(n_heads, n_kv_heads, head_dim), MLP(2 * d_model), positions=Rope()))
