"""Synthetic sequence tasks that need long-range recall: reverse (or copy) a random string of symbols.

Chapter 1 trains recurrent encoder-decoders on these. The task is deliberately trivial for a person and
free of any linguistic shortcut: to emit the first output symbol of a reversal, the model must recall the
*last* input symbol; to emit the last, it must recall the *first*, which the encoder read many steps ago.

Token ids: 0 is padding, 1 begins a target (BOS), 2 ends it (EOS), and the symbols are 3, 4, ...
printed as the letters a, b, c, ...
"""

from dataclasses import dataclass
from typing import Literal

import torch

PAD, BOS, EOS = 0, 1, 2
N_SPECIAL = 3
SPECIAL_NAMES = {PAD: "<pad>", BOS: "<bos>", EOS: "<eos>"}


@dataclass
class Batch:
    """One batch of source/target pairs, padded on the right with PAD.

    src:         (B, T) symbols to read, T = longest source in the batch
    src_lengths: (B,)   number of real (non-pad) tokens in each row of src
    tgt_in:      (B, S) decoder input, BOS followed by the target (teacher forcing); S = T + 1
    tgt_out:     (B, S) what the decoder must predict at each step: the target followed by EOS
    """

    src: torch.Tensor
    src_lengths: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor

    def to(self, device) -> "Batch":
        """Return the same batch with every tensor on `device`."""
        return Batch(*(t.to(device) for t in (self.src, self.src_lengths, self.tgt_in, self.tgt_out)))


@dataclass(frozen=True)
class RecallTask:
    """Reverse (or copy) random sequences of `n_symbols` symbols whose lengths are uniform in [min_len, max_len].

    `task.batch(64, generator=g)` draws a training batch; `task.batch(64, length=30, generator=g)`
    draws sequences of exactly one length, as for measuring accuracy against length.
    """

    n_symbols: int = 10
    min_len: int = 1
    max_len: int = 20
    mode: Literal["reverse", "copy"] = "reverse"

    def __post_init__(self):
        if not isinstance(self.n_symbols, int) or self.n_symbols < 2:
            raise ValueError(f"n_symbols must be an integer >= 2, got {self.n_symbols!r}")
        if not isinstance(self.min_len, int) or self.min_len < 1:
            raise ValueError(f"min_len must be an integer >= 1, got {self.min_len!r}")
        if not isinstance(self.max_len, int) or self.max_len < self.min_len:
            raise ValueError(
                f"max_len must be an integer >= min_len ({self.min_len}), got {self.max_len!r}"
            )
        if self.mode not in ("reverse", "copy"):
            raise ValueError(f"mode must be 'reverse' or 'copy', got {self.mode!r}")

    @property
    def vocab_size(self) -> int:
        """Number of token ids: the three special tokens plus the symbols."""
        return N_SPECIAL + self.n_symbols

    def target_of(self, symbols: torch.Tensor) -> torch.Tensor:
        """The target for one unpadded source sequence (T,): reversed or copied."""
        return symbols.flip(0) if self.mode == "reverse" else symbols.clone()

    def batch(
        self, batch_size: int, *, length: int | None = None, generator: torch.Generator | None = None
    ) -> Batch:
        """Draw `batch_size` random examples; every source has `length` tokens if given, else a random length."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if length is not None and (not isinstance(length, int) or length < 1):
            raise ValueError(f"length must be a positive integer or None, got {length!r}")
        if length is None:
            lengths = torch.randint(self.min_len, self.max_len + 1, (batch_size,), generator=generator)
        else:
            lengths = torch.full((batch_size,), length)
        T = int(lengths.max())
        symbols = torch.randint(N_SPECIAL, self.vocab_size, (batch_size, T), generator=generator)

        src = torch.full((batch_size, T), PAD)          # (B, T)
        tgt_in = torch.full((batch_size, T + 1), PAD)   # (B, T+1)
        tgt_out = torch.full((batch_size, T + 1), PAD)  # (B, T+1)
        for b, n in enumerate(lengths.tolist()):
            src[b, :n] = symbols[b, :n]
            target = self.target_of(symbols[b, :n])
            tgt_in[b, 0] = BOS
            tgt_in[b, 1 : n + 1] = target
            tgt_out[b, :n] = target
            tgt_out[b, n] = EOS
        return Batch(src, lengths, tgt_in, tgt_out)

    def to_str(self, ids) -> str:
        """Render token ids as text: symbols as letters, special tokens by name, e.g. 'cab<eos>'."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return "".join(SPECIAL_NAMES.get(i, chr(ord("a") + i - N_SPECIAL)) for i in ids)


@dataclass(frozen=True)
class PasskeyTask:
    """Retrieve a passkey from `distance` tokens back (chapter 5): random filler, a marker, the key, more
    filler, and at the end a query token; the model must answer with the key.

    Token ids: filler symbols 0 .. n_filler - 1, then the marker, the query, and the keys.
    `batch(n, generator=g)` returns ids (n, length) and the keys (n,), which the model must predict at the
    last position; the key sits `distance` positions before the query (uniform in [2, length - 3] if not given).
    """

    n_keys: int = 8
    n_filler: int = 16
    length: int = 48

    @property
    def marker(self) -> int:
        return self.n_filler

    @property
    def query(self) -> int:
        return self.n_filler + 1

    @property
    def vocab_size(self) -> int:
        return self.n_filler + 2 + self.n_keys

    def batch(self, batch_size: int, distance: int | None = None, generator: torch.Generator | None = None):
        """ids (B, length) with a key `distance` tokens before the final query token, and the keys (B,)."""
        if distance is not None and not 1 <= distance <= self.length - 2:
            raise ValueError(f"distance must be in [1, {self.length - 2}] for length {self.length}, got {distance!r}.")
        ids = torch.randint(0, self.n_filler, (batch_size, self.length), generator=generator)
        keys = torch.randint(0, self.n_keys, (batch_size,), generator=generator)
        if distance is None:
            distances = torch.randint(2, self.length - 2, (batch_size,), generator=generator)
        else:
            distances = torch.full((batch_size,), distance)
        rows = torch.arange(batch_size)
        key_at = self.length - 1 - distances
        ids[rows, key_at - 1] = self.marker
        ids[rows, key_at] = self.n_filler + 2 + keys
        ids[:, -1] = self.query
        return ids, self.n_filler + 2 + keys
