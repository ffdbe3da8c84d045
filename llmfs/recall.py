"""Multi-query associative recall (MQAR, Arora et al., 2023): a task where attention capacity matters.

A sequence lists `n_pairs` key-value pairs, then asks for the values of the keys in a random order:

    k3 v7 k1 v2 k9 v4 ... | k1 → v2   k9 → v4   k3 → v7 ...

Each answer must be fetched from the right earlier position, so a model whose keys and values are
squeezed (fewer K/V heads, a narrower latent) has less room to store the pairs. Chapter 4 trains
attention variants on it at matched KV-cache budgets.
"""

from __future__ import annotations

import math

import torch

from .model import Transformer


def mqar_batch(batch_size: int, n_pairs: int, n_keys: int, n_values: int, generator=None):
    """Token ids (B, 4 * n_pairs) and targets (B, 4 * n_pairs), -100 except where a value must be recalled.

    Keys are ids 0..n_keys-1 (distinct within a sequence), values n_keys..n_keys+n_values-1.
    """
    if n_pairs > n_keys:
        raise ValueError(f"n_pairs={n_pairs} needs at least as many keys, got n_keys={n_keys}.")
    keys = torch.rand(batch_size, n_keys, generator=generator).argsort(-1)[:, :n_pairs]  # distinct keys
    values = n_keys + torch.randint(0, n_values, (batch_size, n_pairs), generator=generator)
    order = torch.rand(batch_size, n_pairs, generator=generator).argsort(-1)
    asked, answers = keys.gather(1, order), values.gather(1, order)
    ids = torch.stack((torch.stack((keys, values), -1).flatten(1), torch.stack((asked, answers), -1).flatten(1)),
                      1).flatten(1)  # (B, 4 * n_pairs): the pairs, then the questions with their answers
    targets = torch.full_like(ids, -100)
    targets[:, 2 * n_pairs::2] = answers  # after each asked key, the model must predict its value
    return ids, targets


def train_recall(config, steps: int, n_pairs: int, seed: int, batch_size: int = 64, lr: float = 3e-3,
                 device: str = "cpu") -> dict:
    """Train `Transformer(config)` on MQAR from seed `seed`: its held-out `recall_metrics` and the model.

    config.vocab_size must be n_keys + n_values (n_keys = n_values = vocab_size // 2).
    """
    torch.manual_seed(seed)
    n_keys = config.vocab_size // 2
    model = Transformer(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    data = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        ids, targets = mqar_batch(batch_size, n_pairs, n_keys, config.vocab_size - n_keys, data)
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
    vocab_size = model.config.vocab_size
    n_keys = vocab_size // 2
    ids, targets = mqar_batch(n_sequences, n_pairs, n_keys, vocab_size - n_keys, torch.Generator().manual_seed(10**6))
    device = next(model.parameters()).device
    with torch.no_grad():
        logits = model(ids.to(device)).cpu()
    asked = targets != -100
    return {"loss": torch.nn.functional.cross_entropy(logits[asked], targets[asked]).item(),
            "accuracy": (logits[asked].argmax(-1) == targets[asked]).float().mean().item(),
            "chance_loss": math.log(vocab_size - n_keys)}
