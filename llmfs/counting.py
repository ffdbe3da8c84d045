"""Sizes by formula, without allocating weights: parameter counts and KV-cache bytes."""

from dataclasses import dataclass

import torch

from .attention import ATTENTION
from .config import ModelConfig


@dataclass(frozen=True)
class ParameterCount:
    """Total parameters and those used for each token (equal for dense models; MoE differs, chapter 6)."""

    total: int
    active: int
    embedding: int

    @property
    def non_embedding(self) -> int:
        return self.total - self.embedding


def count_parameters(config: ModelConfig) -> ParameterCount:
    """Count the parameters of `Transformer(config)` by building it on the meta device (no memory used)."""
    from .model import Transformer

    with torch.device("meta"):
        model = Transformer(config)
    total = sum(p.numel() for p in model.parameters())  # a tied lm_head is counted once
    embedding = model.token_embedding.weight.numel()
    if model.position_embedding is not None:
        embedding += sum(p.numel() for p in model.position_embedding.parameters())
    return ParameterCount(total=total, active=total, embedding=embedding)


def kv_cache_bytes(config: ModelConfig, seq_len: int, batch_size: int = 1, dtype=torch.bfloat16) -> int:
    """Bytes a KV cache holds after `seq_len` tokens: per layer, per token, what its attention caches."""
    if seq_len < 0 or batch_size < 1:
        raise ValueError(f"need seq_len >= 0 and batch_size >= 1, got seq_len={seq_len}, batch_size={batch_size}.")
    itemsize = torch.empty((), dtype=dtype).element_size()
    per_token = sum(ATTENTION[spec.attention].cache_values_per_token(config) for spec in config.layers)
    return per_token * seq_len * batch_size * itemsize
