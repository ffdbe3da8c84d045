"""The KV cache: each layer keeps what it computed for past tokens, so decoding a new token costs one
token's work instead of the whole sequence's (chapter 3).

Every attention kind uses the same small interface: `layer_cache.update(*new) -> full`, which appends
the new tokens' tensors along the sequence axis (dim 2, after batch and heads) and returns everything
cached so far. Multi-head attention caches (k, v); other kinds may cache other tensors.
"""

import torch


class LayerCache:
    """One layer's cached tensors, each (B, heads, T_cached, dim)."""

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self.tensors: tuple[torch.Tensor, ...] = ()

    @property
    def length(self) -> int:
        return self.tensors[0].shape[2] if self.tensors else 0

    def update(self, *new: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Append the new tokens' tensors and return the full cached tensors."""
        for t in new:
            if t.shape[0] != self.batch_size:
                raise ValueError(
                    f"this cache was made for batch_size={self.batch_size} but got a batch of {t.shape[0]}; "
                    "make a new cache with model.new_cache(batch_size)."
                )
        if self.tensors:
            self.tensors = tuple(torch.cat((old, t), dim=2) for old, t in zip(self.tensors, new))
        else:
            self.tensors = tuple(new)
        return self.tensors

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors)


class KVCache:
    """The caches of all layers of one model, for one batch of sequences."""

    def __init__(self, n_layers: int, batch_size: int):
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        self.batch_size = batch_size
        self.layers = [LayerCache(batch_size) for _ in range(n_layers)]

    def __getitem__(self, layer: int) -> LayerCache:
        return self.layers[layer]

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def length(self) -> int:
        """How many tokens are cached (the position of the next token)."""
        return self.layers[0].length

    @property
    def nbytes(self) -> int:
        """Bytes held by all cached tensors."""
        return sum(layer.nbytes for layer in self.layers)
