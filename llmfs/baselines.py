"""Count models as baselines for a language model's loss: what "learned" means beyond word frequencies.

A unigram model predicts every token by its frequency in the training text; a bigram model by its
frequency after the previous token. A trained model should beat both on the validation text (chapters 2, 3).
"""

import math

import torch


def ngram_loss(train_ids, val_ids, order: int, vocab_size: int, smoothing: float = 0.1) -> float:
    """Validation loss (nats per token) of a count model of `order` 1 (unigram) or 2 (bigram).

    Counts come from `train_ids`, plus `smoothing` for every token (add-k), so no probability is zero.
    For a bigram the first validation token has no previous one and is not scored.
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 (unigram) or 2 (bigram), got {order!r}.")
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size < 1:
        raise ValueError(f"vocab_size must be a positive integer, got {vocab_size!r}.")
    if not isinstance(smoothing, (int, float)) or isinstance(smoothing, bool) or not math.isfinite(smoothing) \
            or smoothing <= 0:
        raise ValueError(f"smoothing must be a finite number > 0, got {smoothing!r}.")
    train, val = torch.as_tensor(train_ids).long().flatten(), torch.as_tensor(val_ids).long().flatten()
    if len(val) < order or len(train) < order:
        raise ValueError(f"need at least {order} training and validation tokens for order {order}.")
    for name, ids in (("train_ids", train), ("val_ids", val)):
        if ids.min() < 0 or ids.max() >= vocab_size:
            raise ValueError(f"{name} must lie in [0, vocab_size={vocab_size}).")
    if order == 1:
        counts = torch.bincount(train, minlength=vocab_size).double() + smoothing  # (V,)
        return -(counts / counts.sum()).log()[val].mean().item()
    pairs = torch.bincount(train[:-1] * vocab_size + train[1:], minlength=vocab_size**2).double()
    counts = pairs.view(vocab_size, vocab_size) + smoothing  # (V previous, V next)
    log_probs = (counts / counts.sum(dim=1, keepdim=True)).log()
    return -log_probs[val[:-1], val[1:]].mean().item()
