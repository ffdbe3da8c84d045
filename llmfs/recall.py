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

from .model import Transformer
from .tasks import IGNORE, MQARTask


def recall_task(vocab_size: int, n_pairs: int) -> MQARTask:
    """The MQAR task (`llmfs.tasks.MQARTask`) a model of `vocab_size` tokens trains on: half keys, half values."""
    n_keys = vocab_size // 2
    return MQARTask(n_pairs=n_pairs, n_keys=n_keys, n_values=vocab_size - n_keys)


def train_recall(config, steps: int, n_pairs: int, seed: int, batch_size: int = 64, lr: float = 3e-3,
                 device: str = "cpu") -> dict:
    """Train `Transformer(config)` on MQAR from seed `seed`: its held-out `recall_metrics` and the model.

    config.vocab_size must be n_keys + n_values (n_keys = n_values = vocab_size // 2).
    """
    torch.manual_seed(seed)
    task = recall_task(config.vocab_size, n_pairs)
    model = Transformer(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    data = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        ids, targets = task.batch(batch_size, data)
        ids, targets = ids.to(device), targets.to(device)
        loss = torch.nn.functional.cross_entropy(model(ids).flatten(0, 1), targets.flatten(), ignore_index=-100)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return {**recall_metrics(model.eval(), n_pairs), "model": model}


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
