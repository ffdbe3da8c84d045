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


class WindowLayerCache(LayerCache):
    """Keys and values of the last `window` tokens (plus the first `sink_tokens`, StreamingLLM), in a ring buffer.

    Memory stops growing once `sink_tokens + window` tokens are held: token p then overwrites the slot of
    token p - window, `sink_tokens + (p - sink_tokens) % window`. Slots are not in position order, so the
    cache keeps the position of every held token (`positions`) for the attention mask.
    """

    def __init__(self, batch_size: int, window: int, sink_tokens: int = 0):
        super().__init__(batch_size)
        self.window, self.sink_tokens = window, sink_tokens
        self.positions = torch.empty(0, dtype=torch.long)  # (n_held,) the position of each held token

    def slot(self, position: torch.Tensor) -> torch.Tensor:
        """Where the token at `position` is held: sink tokens in the first slots, the rest around the ring."""
        k = self.sink_tokens
        return torch.where(position < k, position, k + (position - k) % self.window)

    def update(self, *new: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return what the new tokens may attend to, held tokens then new ones, and their positions; then keep
        the sink tokens and the last `window` tokens. New tensors are (B, n_kv_heads, T, head_dim)."""
        self.check_batch(new)
        T = new[0].shape[2]
        new_positions = torch.arange(self.length, self.length + T, device=new[0].device)
        if self.tensors:
            seen = tuple(torch.cat((old, t), dim=2) for old, t in zip(self.tensors, new))
            seen_positions = torch.cat((self.positions.to(new_positions.device), new_positions))
        else:
            seen, seen_positions = tuple(new), new_positions
        self.length += T
        size = self.sink_tokens + self.window
        if self.length <= size:  # not full yet: every token is kept, position p in slot p
            self.tensors, self.positions = seen, seen_positions
        else:
            keep = (seen_positions < self.sink_tokens) | (seen_positions >= self.length - self.window)
            kept = seen_positions[keep]
            if self.positions.numel() < size:  # the first time the cache is full: allocate the ring
                self.tensors = tuple(t.new_empty(*t.shape[:2], size, t.shape[3]) for t in seen)
                self.positions = kept.new_empty(size)
            slots = self.slot(kept)
            for ring, t in zip(self.tensors, seen):
                ring[:, :, slots] = t[:, :, keep]
            self.positions[slots] = kept
        return (*seen, seen_positions)


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
