"""Text generation: greedy decoding or sampling with temperature and top-k, with or without the KV cache."""

import math

import torch
from torch import nn


def check_decoding_arguments(idx, max_new_tokens, temperature) -> None:
    """Clear errors for the arguments every decoder takes: token ids (B, T), a token count, a temperature."""
    if not isinstance(idx, torch.Tensor) or idx.dim() != 2 or idx.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"idx must be integer token ids of shape (B, T), got {getattr(idx, 'shape', idx)!r}.")
    if idx.shape[0] == 0 or idx.shape[1] == 0:
        raise ValueError(f"idx must hold at least one sequence of at least one token, got shape {tuple(idx.shape)}.")
    if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}.")
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not math.isfinite(temperature) \
            or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0 (0 is greedy), got {temperature!r}.")


@torch.no_grad()  # no autograd graph: decoding never needs gradients
def generate(model, idx, max_new_tokens, temperature=0.0, top_k=None, use_cache=True, generator=None):
    """Append `max_new_tokens` tokens to `idx` (B, T) and return the ids (B, T + max_new_tokens).

    temperature=0 picks the most likely token (greedy); otherwise logits are divided by the
    temperature and, if top_k is set, only the k most likely tokens may be sampled.
    use_cache=True prefills a KV cache once and then feeds one token per step; use_cache=False
    recomputes the whole sequence every step (same tokens, much slower: chapter 3).
    """
    check_decoding_arguments(idx, max_new_tokens, temperature)
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
        raise ValueError(f"top_k must be None or a positive integer, got {top_k!r}.")
    if not isinstance(use_cache, bool):
        raise ValueError(f"use_cache must be True or False, got {use_cache!r}.")
    context_length = model.config.context_length
    if idx.shape[1] + max_new_tokens > context_length:
        raise ValueError(
            f"generating {max_new_tokens} tokens after {idx.shape[1]} would exceed "
            f"context_length={context_length}; ask for at most {context_length - idx.shape[1]} new tokens."
        )
    was_training = model.training
    model.eval()
    try:
        cache = model.new_cache(idx.shape[0]) if use_cache else None
        if cache is not None:
            cache.reserve(idx.shape[1] + max_new_tokens)  # one allocation for the whole generation
        logits = model(idx, cache=cache)[:, -1, :]  # prefill: (B, vocab)
        for step in range(max_new_tokens):
            next_id = _pick(logits, temperature, top_k, generator)  # (B, 1)
            idx = torch.cat((idx, next_id), dim=1)
            if step == max_new_tokens - 1:
                break
            logits = (model(next_id, cache=cache) if use_cache else model(idx))[:, -1, :]
    finally:
        model.train(was_training)  # also when something above raised
    return idx


@torch.no_grad()
def decode_layout(model: nn.Module) -> nn.Module:
    """Store every linear layer's weight input-major, in place: the same (out, in) shape and values, its transpose
    contiguous. A decode step multiplies one vector by each weight, and on a CPU that product streams an
    input-major matrix through memory faster (chapter 3); tied weights stay tied. Returns `model`."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"decode_layout needs a torch.nn.Module, got {type(model).__name__}.")
    done = set()
    for module in model.modules():
        weight = getattr(module, "weight", None) if isinstance(module, nn.Linear) else None
        if weight is None or id(weight) in done or weight.dim() != 2:
            continue
        done.add(id(weight))
        if weight.stride() != (1, weight.shape[0]):  # not input-major yet
            weight.data = weight.data.t().contiguous().t()  # same Parameter object: optimisers and ties keep it
    return model


def _pick(logits, temperature, top_k, generator):
    """The next token from last-position logits (B, vocab) -> (B, 1)."""
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits.float() / temperature
    overflow = (logits == float("inf")).any(dim=-1, keepdim=True)  # a tiny temperature: keep only the top tokens
    top = logits == logits.max(dim=-1, keepdim=True).values
    logits = torch.where(overflow, torch.where(top, 0.0, float("-inf")), logits)
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits.float(), dim=-1)
    return torch.multinomial(probs, 1, generator=generator)
