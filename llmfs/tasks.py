"""Synthetic sequence tasks that need long-range recall: reverse (or copy) a random string of symbols.

Chapter 1 trains recurrent encoder-decoders on these. The task is deliberately trivial for a person and
free of any linguistic shortcut: to emit the first output symbol of a reversal, the model must recall the
*last* input symbol; to emit the last, it must recall the *first*, which the encoder read many steps ago.

Token ids: 0 is padding, 1 begins a target (BOS), 2 ends it (EOS), and the symbols are 3, 4, ...
printed as the letters a, b, c, ...
"""

import math
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


@dataclass
class PairLookupTask:
    """Memorise a random table: after the two tokens (a, b), predict table[a, b] (chapter 6).

    Tokens 0..n-1 are first keys `a`, n..2n-1 second keys `b`; the answer is one of 0..n-1. No rule links the
    n * n answers, so a model can only store them, and how many it gets right measures its capacity. The
    target at the first position is `a` itself (a free copy), so every position has a target.
    """

    n: int = 64
    seed: int = 0

    def __post_init__(self):
        self.table = torch.randint(0, self.n, (self.n, self.n), generator=torch.Generator().manual_seed(self.seed))

    @property
    def vocab_size(self) -> int:
        return 2 * self.n

    def pairs(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs (N, 2) = (a, n + b) and targets (N, 2) = (a, table[a, b])."""
        return torch.stack([a, self.n + b], 1), torch.stack([a, self.table[a, b]], 1)

    def batches(self, batch_size: int, n_batches: int, seed: int = 0) -> list:
        """`n_batches` batches of random pairs, drawn once (a list `llmfs.train` cycles through)."""
        gen = torch.Generator().manual_seed(seed)
        draw = lambda: torch.randint(0, self.n, (batch_size,), generator=gen)  # noqa: E731
        return [self.pairs(draw(), draw()) for _ in range(n_batches)]

    def every_pair(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All n * n pairs, a-major."""
        a, b = torch.meshgrid(torch.arange(self.n), torch.arange(self.n), indexing="ij")
        return self.pairs(a.flatten(), b.flatten())

    @torch.no_grad()
    def accuracy(self, model) -> float:
        """Fraction of the table a model (ids (B, 2) -> logits (B, 2, V)) answers correctly."""
        inputs, targets = self.every_pair()
        return (model(inputs)[:, 1].argmax(-1) == targets[:, 1]).float().mean().item()


# --- multi-query associative recall (chapter 9) -----------------------------------------------------------

IGNORE = -100  # target of positions that are not scored (cross_entropy's ignore_index)


@dataclass(frozen=True)
class MQARTask:
    """Multi-query associative recall (Arora et al., 2023, "Zoology"): `n_pairs` key-value pairs, then
    `n_queries` of the keys again (distinct, in random order), each followed by its value.

    Keys are token ids 0 .. n_keys - 1, values n_keys .. n_keys + n_values - 1. A language model reads the
    sequence and is scored only where the input is a query key: the next token must be that key's value.
    Every pair is fresh, so nothing can be memorised in the weights: the model must store the pairs as it
    reads them and look them up later; chance is 1 / n_values.
    """

    n_pairs: int = 8
    n_queries: int | None = None  # None: every key is queried once
    n_keys: int = 64
    n_values: int = 64

    def __post_init__(self):
        for name in ("n_pairs", "n_keys", "n_values"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.n_pairs > self.n_keys:
            raise ValueError(f"n_pairs={self.n_pairs} needs at least as many distinct keys, got n_keys={self.n_keys}")
        queries = self.queries
        if not isinstance(queries, int) or isinstance(queries, bool) or not 1 <= queries <= self.n_pairs:
            raise ValueError(f"n_queries must be an integer in [1, n_pairs={self.n_pairs}] or None, "
                             f"got {self.n_queries!r}")

    @property
    def queries(self) -> int:
        return self.n_pairs if self.n_queries is None else self.n_queries

    @property
    def vocab_size(self) -> int:
        return self.n_keys + self.n_values

    @property
    def chance(self) -> float:
        """Accuracy of guessing a value at random."""
        return 1 / self.n_values

    def batch(self, batch_size: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets), each (B, 2 * n_pairs + 2 * n_queries - 1); targets are IGNORE except after query keys."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        N, Q = self.n_pairs, self.queries
        keys = torch.rand(batch_size, self.n_keys, generator=generator).argsort(dim=1)[:, :N]  # distinct keys
        values = self.n_keys + torch.randint(0, self.n_values, (batch_size, N), generator=generator)
        asked = torch.rand(batch_size, N, generator=generator).argsort(dim=1)[:, :Q]  # which pairs, in what order
        context = torch.stack((keys, values), dim=2).flatten(1)  # k1 v1 k2 v2 ...
        queries = torch.stack((keys.gather(1, asked), values.gather(1, asked)), dim=2).flatten(1)
        sequence = torch.cat((context, queries), dim=1)
        inputs, targets = sequence[:, :-1], torch.full_like(sequence[:, 1:], IGNORE)
        scored = torch.arange(2 * N, 2 * N + 2 * Q, 2)  # positions whose input is a query key
        targets[:, scored] = sequence[:, scored + 1]
        return inputs, targets


def recall_accuracy(model, task: MQARTask, batch_size: int = 256, generator: torch.Generator | None = None) -> float:
    """Fraction of query keys after which `model`'s most likely next token is the right value."""
    inputs, targets = task.batch(batch_size, generator)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            predicted = model(inputs).argmax(-1)
    finally:
        model.train(was_training)
    scored = targets != IGNORE
    return (predicted[scored] == targets[scored]).float().mean().item()


def train_recall(model, tasks, steps: int, batch_size: int = 64, lr: float = 3e-3,
                 generator: torch.Generator | None = None) -> list[float]:
    """Train `model` on MQAR batches, each from one of `tasks` in turn (a mix of difficulties); returns the losses.

    AdamW with a linear warm-up over the first 10% of steps and a cosine decay to 0.
    """
    tasks = list(tasks)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min((s + 1) / warmup, 0.5 * (
        1 + math.cos(math.pi * min(1.0, (s - warmup) / max(1, steps - warmup))))))
    model.train()
    losses = []
    for step in range(steps):
        inputs, targets = tasks[step % len(tasks)].batch(batch_size, generator)
        logits = model(inputs)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return losses


def memory_recall(rule: str, n_pairs: int, dim: int = 32, n_values: int = 64, shared: float = 1.0,
                  beta: float = 0.5, decay: float = 0.98, batch_size: int = 64, seed: int = 0) -> float:
    """MQAR on a bare memory, no training: write `n_pairs` key-value pairs with `rule`, then query every key.

    Keys are random unit vectors of `dim` that share a common direction (weight `shared`), as learned keys
    do; values are drawn from a codebook of `n_values` random unit vectors, and a read counts as right when
    its nearest codebook vector is the stored one (chance: 1 / n_values). rule: "linear" (S += k vᵀ),
    "deltanet" (write strength `beta`), "gated_deltanet" (also a decay per step) or "softmax" (attention
    over all stored pairs at inverse temperature 32: a KV cache, which grows with n_pairs).
    """
    from .linear_attention import l2_normalize, recurrent

    g = torch.Generator().manual_seed(seed)
    common = torch.randn(batch_size, 1, 1, dim, generator=g)
    keys = l2_normalize(shared * common + torch.randn(batch_size, 1, n_pairs, dim, generator=g))  # (B, 1, N, d)
    codebook = l2_normalize(torch.randn(n_values, dim, generator=g))
    stored = torch.randint(0, n_values, (batch_size, n_pairs), generator=g)
    values = codebook[stored][:, None]  # (B, 1, N, d)
    if rule == "softmax":
        read = torch.softmax(32 * keys @ keys.transpose(-1, -2), dim=-1) @ values
    else:
        betas = None if rule == "linear" else torch.full((batch_size, 1, n_pairs), beta)
        log_decay = torch.full((batch_size, 1, n_pairs), math.log(decay)) if rule == "gated_deltanet" else None
        if rule not in ("linear", "deltanet", "gated_deltanet"):
            raise ValueError(f"rule must be 'linear', 'deltanet', 'gated_deltanet' or 'softmax', got {rule!r}")
        _, state = recurrent(keys, keys, values, log_decay, betas)  # write all pairs; state (B, 1, d, d)
        read = torch.einsum("bhkv,bhnk->bhnv", state, keys)  # then read every key
    recalled = (read[:, 0] @ codebook.T).argmax(-1)  # (B, N)
    return (recalled == stored).float().mean().item()
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


@dataclass(frozen=True)
class TriggerCopyTask:
    """A task where most positions need no attention at all (chapter 5's attention sinks): a begin token, then
    random symbols, some replaced by a trigger. The target at a symbol is that symbol (the residual stream has
    it already); at a trigger it is the token just before. An attention head serves only the triggers, and must
    leave every other position alone: it needs a way to attend to nothing.

    Token ids: symbols 0 .. n_symbols - 1, the trigger, then the begin token. `batch(n, generator=g)` returns
    ids and targets, each (n, length + 1); position 0 holds the begin token (its target: itself).
    """

    n_symbols: int = 16
    trigger_rate: float = 0.3
    length: int = 48

    def __post_init__(self):
        for name in ("n_symbols", "length"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 2:
                raise ValueError(f"{name} must be an integer >= 2, got {value!r}")
        rate = self.trigger_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(f"trigger_rate must be a number in [0, 1), got {rate!r}")

    @property
    def trigger(self) -> int:
        return self.n_symbols

    @property
    def begin(self) -> int:
        return self.n_symbols + 1

    @property
    def vocab_size(self) -> int:
        return self.n_symbols + 2

    def batch(self, batch_size: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """ids and targets, each (B, length + 1): the begin token, then symbols and triggers."""
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        symbols = torch.randint(0, self.n_symbols, (batch_size, self.length), generator=generator)
        triggered = torch.rand(batch_size, self.length, generator=generator) < self.trigger_rate
        triggered[:, 0] = False  # the first symbol has no symbol before it
        body = torch.where(triggered, self.trigger, symbols)  # (B, length)
        previous = torch.cat((body[:, :1], body[:, :-1]), dim=1)
        begin = torch.full((batch_size, 1), self.begin)
        return torch.cat((begin, body), 1), torch.cat((begin, torch.where(triggered, previous, body)), 1)
