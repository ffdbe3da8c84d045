"""The KV cache: each layer keeps what it computed for past tokens, so decoding a new token costs one
token's work instead of the whole sequence's (chapter 3).

Each layer's entry is made by its own mechanism (`module.new_cache(batch_size)`), so a model may mix
kinds: multi-head attention keeps keys and values; other mechanisms keep what they need. Every entry
has the same small interface: `update(*new) -> what to attend over`, `length` (tokens seen), `tensors`
(what is held for those tokens) and `nbytes`.

`nbytes` counts the tokens held, not spare room: it is what `llmfs.kv_cache_bytes(config, length)`
computes. A cache that allocates ahead (`KVLayerCache`) reports its allocation as `allocated_nbytes`.
"""

import torch


class LayerCache:
    """One layer's cache for a batch of sequences; subclasses say what is kept."""

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self.tensors: tuple[torch.Tensor, ...] = ()  # what is held for the `length` tokens seen
        self.length = 0  # tokens seen so far: the position of the next token

    def check_batch(self, new: tuple[torch.Tensor, ...]) -> None:
        for t in new:
            if t.shape[0] != self.batch_size:
                raise ValueError(
                    f"this cache was made for batch_size={self.batch_size} but got a batch of {t.shape[0]}; "
                    "make a new cache with model.new_cache(batch_size)."
                )

    def reserve(self, n_tokens: int) -> None:
        """Make room for `n_tokens` tokens in all ahead of time; a cache that does not allocate ahead ignores it."""

    def truncate(self, length: int) -> None:
        """Forget every token from position `length` on (speculative decoding rolls back rejected drafts).

        Only caches that keep every past token can; a ring buffer or a recurrent state has already
        overwritten or folded in what came before, so those refuse (snapshot the model's cache instead).
        """
        raise NotImplementedError(
            f"{type(self).__name__} cannot roll back: it does not keep every past token separately "
            "(ring-buffer windows and recurrent states overwrite them); speculative decoding needs "
            "a model whose layers all use full keys/values (KVLayerCache or ConcatKVLayerCache)."
        )

    def _check_truncate(self, length: int) -> None:
        if not isinstance(length, int) or isinstance(length, bool) or not 0 <= length <= self.length:
            raise ValueError(f"length must be an integer in [0, {self.length}] (tokens cached), got {length!r}.")

    @property
    def nbytes(self) -> int:
        """Bytes held by this layer's cached tensors for the tokens seen."""
        return sum(t.numel() * t.element_size() for t in self.tensors)

    @property
    def allocated_nbytes(self) -> int:
        """Bytes this layer has allocated, spare room included (equal to `nbytes` unless it allocates ahead)."""
        return self.nbytes


class ConcatKVLayerCache(LayerCache):
    """Keys and values of every past token, each (B, n_kv_heads, T_cached, head_dim), grown by `torch.cat`.

    Simple, but every step copies the whole cache into a new tensor one token longer (chapter 3 measures it).
    """

    def update(self, *new: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Append the new tokens' tensors along the sequence axis and return everything cached so far."""
        self.check_batch(new)
        if self.tensors:
            self.tensors = tuple(torch.cat((old, t), dim=2) for old, t in zip(self.tensors, new))
        else:
            self.tensors = tuple(new)
        self.length += new[0].shape[2]
        return self.tensors

    def truncate(self, length: int) -> None:
        """Keep the first `length` tokens only."""
        self._check_truncate(length)
        self.tensors = tuple(t[:, :, :length] for t in self.tensors)
        self.length = length


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
class KVLayerCache(LayerCache):
    """Keys and values in buffers allocated ahead, (B, n_kv_heads, capacity, head_dim), written in place.

    A step writes only its new tokens and returns views of the filled part, so nothing old is copied.
    `reserve(n)` sizes the buffers for a whole generation at once (`generate` does); without it they
    double when full, so the copies cost O(1) per token on average.
    """

    def __init__(self, batch_size: int):
        super().__init__(batch_size)
        self.buffers: tuple[torch.Tensor, ...] = ()  # (B, n_kv_heads, capacity, head_dim) each
        self.capacity = 0  # tokens the buffers hold (or will hold once the first update shows the shapes)

    def reserve(self, n_tokens: int) -> None:
        if n_tokens > self.capacity:
            self.capacity = n_tokens
            if self.buffers:
                self._resize(n_tokens)

    def _resize(self, capacity: int) -> None:
        """Move the filled part into new buffers of `capacity` tokens."""
        new = []
        for old in self.buffers:
            buffer = old.new_empty(*old.shape[:2], capacity, *old.shape[3:])
            buffer[:, :, : self.length] = old[:, :, : self.length]
            new.append(buffer)
        self.buffers, self.capacity = tuple(new), capacity

    def update(self, *new: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Write the new tokens' tensors after the cached ones and return views of everything cached so far."""
        self.check_batch(new)
        end = self.length + new[0].shape[2]
        if not self.buffers:
            self.capacity = max(self.capacity, end)
            self.buffers = tuple(t.new_empty(*t.shape[:2], self.capacity, *t.shape[3:]) for t in new)
        elif end > self.capacity:
            self._resize(max(end, 2 * self.capacity))
        for buffer, t in zip(self.buffers, new):
            buffer[:, :, self.length : end] = t
        self.length = end
        self.tensors = tuple(buffer[:, :, :end] for buffer in self.buffers)
        return self.tensors

    def truncate(self, length: int) -> None:
        """Keep the first `length` tokens only: the buffers stay, the next update overwrites the rest in place."""
        self._check_truncate(length)
        self.length = length
        self.tensors = tuple(buffer[:, :, :length] for buffer in self.buffers)

    @property
    def allocated_nbytes(self) -> int:
        return sum(b.numel() * b.element_size() for b in self.buffers)


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

    def reserve(self, n_tokens: int) -> None:
        """Let every layer that allocates ahead make room for `n_tokens` tokens in all."""
        if not isinstance(n_tokens, int) or isinstance(n_tokens, bool) or n_tokens < 0:
            raise ValueError(f"n_tokens must be an integer >= 0, got {n_tokens!r}.")
        for layer in self.layers:
            layer.reserve(n_tokens)

    def truncate(self, length: int) -> None:
        """Roll every layer back to its first `length` tokens (raises for layers that cannot roll back)."""
        for layer in self.layers:  # refuse before touching any layer, so a failed call changes nothing
            if type(layer).truncate is LayerCache.truncate:
                layer.truncate(length)
        for layer in self.layers:
            layer.truncate(length)

    @property
    def can_truncate(self) -> bool:
        """Whether every layer can roll back (`truncate`)."""
        return all(type(layer).truncate is not LayerCache.truncate for layer in self.layers)

    @property
    def length(self) -> int:
        """How many tokens are cached (the position of the next token)."""
        return self.layers[0].length

    @property
    def nbytes(self) -> int:
        """Bytes held for the cached tokens by all layers (what `llmfs.kv_cache_bytes` computes)."""
        return sum(layer.nbytes for layer in self.layers)

    @property
    def allocated_nbytes(self) -> int:
        """Bytes all layers have allocated, spare room included."""
        return sum(layer.allocated_nbytes for layer in self.layers)
