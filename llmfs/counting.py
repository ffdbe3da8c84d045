"""Sizes by formula, without allocating weights: parameter counts and KV-cache bytes."""

from dataclasses import dataclass

import torch

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
    """Count the parameters of `Transformer(config)` by building it on the meta device (no memory used).

    Active parameters leave out what each module reports a token does not use (`inactive_parameters()`:
    the experts a mixture-of-experts layer does not route it to).
    """
    from .model import Transformer

    if not isinstance(config, ModelConfig):
        raise TypeError(f"count_parameters needs a llmfs.ModelConfig (e.g. llmfs.zoo.get(name)), "
                        f"got {type(config).__name__}.")
    with torch.device("meta"):
        model = Transformer(config)
    total = sum(p.numel() for p in model.parameters())  # a tied lm_head is counted once
    embedding = model.token_embedding.weight.numel()
    if model.position_embedding is not None:
        embedding += sum(p.numel() for p in model.position_embedding.parameters())
    inactive = sum(m.inactive_parameters() for m in model.modules() if hasattr(m, "inactive_parameters"))
    return ParameterCount(total=total, active=total - inactive, embedding=embedding)


def kv_cache_bytes(config: ModelConfig, seq_len: int, batch_size: int = 1, dtype=torch.bfloat16) -> int:
    """Bytes a KV cache holds after `seq_len` tokens: each layer's attention says what it keeps at that length."""
    if not isinstance(config, ModelConfig):
        raise TypeError(f"kv_cache_bytes needs a llmfs.ModelConfig, got {type(config).__name__}.")
    for name, value, low in (("seq_len", seq_len, 0), ("batch_size", batch_size, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype such as torch.bfloat16, got {dtype!r}.")
    itemsize = torch.empty((), dtype=dtype).element_size()
    values = sum(spec.attention.cache_values(seq_len) for spec in config.layers)
    return values * batch_size * itemsize
