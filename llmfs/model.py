"""The Transformer, assembled from a per-layer spec: embeddings, a stack of blocks, a final norm and
the output head. Each layer's mechanisms are built from their own settings (`spec.attention.build(...)`),
so a new architecture is a config, not a new model class (see `llmfs.zoo`).
"""

import math

import torch
import torch.nn as nn

from .cache import KVCache
from .config import LayerSpec, ModelConfig
from .norms import make_norm
from .positions import LearnedPositions
from .residual import NORM_PLACEMENTS


class Block(nn.Module):
    """Attention, then a feed-forward network, each wrapped in a residual connection with its norm."""

    def __init__(self, config: ModelConfig, spec: LayerSpec):
        super().__init__()
        residual = NORM_PLACEMENTS[spec.norm_placement]
        self.attention = residual(config, spec.attention.build(config, spec))
        self.ffn = residual(config, spec.ffn.build(config))

    def forward(self, x, positions, cache=None):  # x: (B, T, d_model)
        x = self.attention(x, positions=positions, cache=cache)
        return self.ffn(x)


class Transformer(nn.Module):
    """A decoder-only language model: token ids (B, T) -> next-token logits (B, T, vocab_size)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise TypeError(f"Transformer needs a llmfs.ModelConfig, got {type(config).__name__}.")
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.position_embedding = LearnedPositions(config) if config.learned_positions else None
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config, spec) for spec in config.layers)
        self.final_norm = make_norm(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.token_embedding.weight
        self.apply(self._init_weights)

    def _init_weights(self, module):
        """GPT-2's initialisation: N(0, 0.02); output projections of residual branches scaled by 1/√(2·n_layers)."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        for name in ("out_proj", "fc_out", "down"):
            proj = getattr(module, name, None)
            if isinstance(proj, nn.Linear):
                nn.init.normal_(proj.weight, mean=0.0, std=0.02 / math.sqrt(2 * self.config.n_layers))

    def new_cache(self, batch_size: int = 1) -> KVCache:
        """An empty cache for `batch_size` sequences: one entry per layer, made by that layer's attention."""
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        return KVCache([block.attention.sublayer.new_cache(batch_size) for block in self.blocks], self.config)

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Logits for every position of `idx` (B, T). With a cache, `idx` continues the cached tokens."""
        if idx.dim() != 2 or idx.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"idx must be integer token ids of shape (B, T), got {tuple(idx.shape)} {idx.dtype}.")
        B, T = idx.shape
        if cache is not None and cache.config is not self.config and cache.config != self.config:
            raise ValueError("this cache was made by a model with another config; "
                             "make one with this model's new_cache(batch_size).")
        start = 0 if cache is None else cache.length
        if start + T > self.config.context_length:
            raise ValueError(
                f"sequence of {start + T} tokens ({start} cached + {T} new) exceeds "
                f"context_length={self.config.context_length}."
            )
        if idx.numel():
            low, high = (int(v) for v in idx.aminmax())  # one pass over the ids for both bounds
            if low < 0 or high >= self.config.vocab_size:
                raise ValueError(
                    f"token ids must lie in [0, vocab_size={self.config.vocab_size}), got values from {low} to {high}."
                )
        positions = torch.arange(start, start + T, device=idx.device)  # (T,)
        x = self.token_embedding(idx)  # (B, T, d_model)
        if self.config.scale_embeddings:  # Gemma: embeddings times √d_model
            x = x * torch.tensor(self.config.d_model ** 0.5, dtype=x.dtype)
        if self.position_embedding is not None:
            x = x + self.position_embedding(positions)
        x = self.dropout(x)
        for i, block in enumerate(self.blocks):
            x = block(x, positions, cache=None if cache is None else cache[i])
        logits = self.lm_head(self.final_norm(x))  # (B, T, vocab_size)
        cap = self.config.logit_softcap
        return logits if cap is None else cap * torch.tanh(logits / cap)  # soft-capped into (-cap, cap)
