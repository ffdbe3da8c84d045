"""The KV cache: each layer keeps what it computed for past tokens, so decoding a new token costs one
token's work instead of the whole sequence's (chapter 3).

Each layer's entry is made by its own mechanism (`module.new_cache(batch_size)`), so a model may mix
kinds: multi-head attention appends keys and values; other mechanisms keep what they need. Every entry
has the same small interface: `update(*new) -> what to attend over`, `length` (tokens seen) and `nbytes`.
"""

import torch


class LayerCache:
    """One layer's cache for a batch of sequences; subclasses say what is kept."""

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self.tensors: tuple[torch.Tensor, ...] = ()
        self.length = 0  # tokens seen so far: the position of the next token

    def check_batch(self, new: tuple[torch.Tensor, ...]) -> None:
        for t in new:
            if t.shape[0] != self.batch_size:
                raise ValueError(
                    f"this cache was made for batch_size={self.batch_size} but got a batch of {t.shape[0]}; "
                    "make a new cache with model.new_cache(batch_size)."
                )

    @property
    def nbytes(self) -> int:
        """Bytes held by this layer's cached tensors."""
        return sum(t.numel() * t.element_size() for t in self.tensors)


class KVLayerCache(LayerCache):
    """Keys and values of every past token, each (B, n_kv_heads, T_cached, head_dim), grown by concatenation."""

    def update(self, *new: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Append the new tokens' tensors along the sequence axis and return everything cached so far."""
        self.check_batch(new)
        if self.tensors:
            self.tensors = tuple(torch.cat((old, t), dim=2) for old, t in zip(self.tensors, new))
        else:
            self.tensors = tuple(new)
        self.length += new[0].shape[2]
        return self.tensors


class KVCache:
    """The caches of all layers of one model, for one batch of sequences."""

    def __init__(self, layers: list[LayerCache], config=None):
        self.layers = list(layers)
        self.batch_size = self.layers[0].batch_size if self.layers else 0
        self.config = config  # the ModelConfig of the model that made it, so another model refuses it

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
