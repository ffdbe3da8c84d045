"""A target and a well-matched draft for speculative decoding on the CPU, trained on phrase text.

`PhraseText` is text made of *phrases* (fixed strings of tokens, like words) chained by a Markov rule:
inside a phrase every next token is certain; after its last token one of a few successor phrases follows
with fixed probabilities. A small draft learns this about as well as a large target, which is the regime
where speculative decoding pays: predictable text (code, boilerplate, names repeated), where a cheap model
is usually right. `trained_pair` trains a target and a draft on the same text (the draft well-matched
because the text is easy for it, not because it copies the target); the appendix and
`python -m llmfs.bench speculative` both use it.
"""

import math
from dataclasses import dataclass

import torch

from .model import Transformer
from .settings import positive_int
from .training import set_seed, train
from . import zoo


@dataclass(frozen=True)
class PhraseText:
    """Text of `n_phrases` phrases that share out the `vocab_size` tokens (each token in exactly one phrase).

    After a phrase, its successor j (of len(successor_probs)) follows with probability successor_probs[j];
    successor 0 of phrase i is phrase i + 1 (so every phrase is reachable), the others are drawn with `seed`.
    """

    vocab_size: int = 64
    n_phrases: int = 16
    successor_probs: tuple = (0.6, 0.3, 0.1)
    seed: int = 0

    def __post_init__(self):
        positive_int("vocab_size", self.vocab_size)
        positive_int("n_phrases", self.n_phrases)
        if not 2 <= self.n_phrases <= self.vocab_size // 2:
            raise ValueError(f"n_phrases must lie in [2, vocab_size // 2 = {self.vocab_size // 2}] so that "
                             f"every phrase has at least 2 tokens, got {self.n_phrases}.")
        probs = self.successor_probs
        if (not isinstance(probs, tuple) or not probs or len(probs) > self.n_phrases
                or not all(isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p) and p > 0
                           for p in probs)
                or abs(sum(probs) - 1) > 1e-6):
            raise ValueError(f"successor_probs must be a tuple of at most n_phrases={self.n_phrases} positive "
                             f"probabilities summing to 1, got {probs!r}.")
        gen = torch.Generator().manual_seed(self.seed)
        # every phrase has 2 tokens plus a random share of the other vocab_size - 2 n_phrases
        extra = self.vocab_size - 2 * self.n_phrases
        cuts = torch.randint(0, extra + 1, (self.n_phrases - 1,), generator=gen).sort().values
        lengths = 2 + torch.diff(torch.cat((torch.tensor([0]), cuts, torch.tensor([extra]))))
        tokens = torch.randperm(self.vocab_size, generator=gen)
        phrases = tuple(tokens.split(lengths.tolist()))
        successors = torch.empty(self.n_phrases, len(probs), dtype=torch.long)
        for i in range(self.n_phrases):
            following = (i + 1) % self.n_phrases
            others = [j for j in torch.randperm(self.n_phrases, generator=gen).tolist() if j != following]
            successors[i] = torch.tensor([following] + others[: len(probs) - 1])
        object.__setattr__(self, "phrases", phrases)
        object.__setattr__(self, "successors", successors)  # (n_phrases, len(successor_probs))

    def stream(self, n_tokens: int, seed: int = 0) -> torch.Tensor:
        """`n_tokens` tokens (n_tokens,) of phrases chained by the successor rule, from a random first phrase."""
        positive_int("n_tokens", n_tokens)
        gen = torch.Generator().manual_seed(seed)
        probs = torch.tensor(self.successor_probs, dtype=torch.float)
        phrase = int(torch.randint(self.n_phrases, (1,), generator=gen))
        pieces, total = [], 0
        while total < n_tokens:
            pieces.append(self.phrases[phrase])
            total += len(self.phrases[phrase])
            phrase = int(self.successors[phrase, torch.multinomial(probs, 1, generator=gen)])
        return torch.cat(pieces)[:n_tokens]

    def batches(self, batch_size: int, seq_len: int, n_batches: int, seed: int = 0) -> list:
        """`n_batches` (inputs, targets) pairs of shape (batch_size, seq_len), cut from one stream."""
        for name, value in (("batch_size", batch_size), ("seq_len", seq_len), ("n_batches", n_batches)):
            positive_int(name, value)
        ids = self.stream(n_batches * batch_size * (seq_len + 1), seed).view(n_batches, batch_size, seq_len + 1)
        return [(rows[:, :-1], rows[:, 1:]) for rows in ids]

    def entropy(self) -> float:
        """The best possible loss (nats per token): successor entropy times the stationary share of phrase ends."""
        transition = torch.zeros(self.n_phrases, self.n_phrases, dtype=torch.float64)
        for j, p in enumerate(self.successor_probs):
            transition[torch.arange(self.n_phrases), self.successors[:, j]] += p
        share = torch.full((self.n_phrases,), 1 / self.n_phrases, dtype=torch.float64)
        for _ in range(2000):  # power iteration to the stationary distribution over phrases
            share = share @ transition
        lengths = torch.tensor([len(p) for p in self.phrases], dtype=torch.float64)
        bits = -sum(p * math.log(p) for p in self.successor_probs)
        return float(bits / (share * lengths).sum())


@dataclass(frozen=True)
class PairSizes:
    """Width, depth, AdamW steps and learning rate of a target and its draft, and the batches both train on."""

    target_d_model: int
    target_layers: int
    target_steps: int
    target_lr: float
    draft_d_model: int
    draft_layers: int
    draft_steps: int
    draft_lr: float
    batch_size: int = 16
    seq_len: int = 32


SIZES = {
    # the bench: a 6-layer, 256-wide target (~30 s of training on one thread), a 1-layer 64-wide draft
    "bench": PairSizes(target_d_model=256, target_layers=6, target_steps=80, target_lr=5e-3,
                       draft_d_model=64, draft_layers=1, draft_steps=150, draft_lr=1e-2),
    # the appendix: an 8-layer target (a step costs about 7 draft steps) and a 1-layer draft, each trained in
    # seconds; with a shallower target each round's own Python overhead eats most of the speedup
    "appendix": PairSizes(target_d_model=64, target_layers=8, target_steps=150, target_lr=1e-2,
                          draft_d_model=64, draft_layers=1, draft_steps=150, draft_lr=1e-2),
}


def phrase_model(text: PhraseText, d_model: int, n_layers: int, context_length: int = 512) -> Transformer:
    """A Llama-style model (RoPE, RMSNorm, SwiGLU) for `text`'s vocabulary: heads of 32, d_ff = 4 d_model."""
    config = zoo.tiny("llama3-8b", vocab_size=text.vocab_size, context_length=context_length, d_model=d_model,
                      n_layers=n_layers, n_heads=d_model // 32, n_kv_heads=d_model // 32, head_dim=32,
                      d_ff=4 * d_model)
    return Transformer(config)


def trained_pair(sizes: str | PairSizes = "appendix", text: PhraseText | None = None, seed: int = 0):
    """Train a target and a draft on the same phrase text; return (target, draft, text), both in eval mode.

    `sizes` is a name of `SIZES` ("bench", "appendix") or a PairSizes. The two see different batches of
    the same text (seeds seed and seed + 1), so the draft matches the target by learning the text too.
    """
    if isinstance(sizes, str):
        if sizes not in SIZES:
            raise ValueError(f"sizes must be one of {sorted(SIZES)} or a PairSizes, got {sizes!r}.")
        sizes = SIZES[sizes]
    if not isinstance(sizes, PairSizes):
        raise TypeError(f"sizes must be one of {sorted(SIZES)} or a PairSizes, got {type(sizes).__name__}.")
    text = PhraseText() if text is None else text
    models = []
    for offset, (d_model, n_layers, steps, lr) in enumerate((
            (sizes.target_d_model, sizes.target_layers, sizes.target_steps, sizes.target_lr),
            (sizes.draft_d_model, sizes.draft_layers, sizes.draft_steps, sizes.draft_lr))):
        set_seed(seed + offset)
        model = phrase_model(text, d_model, n_layers)
        batches = text.batches(sizes.batch_size, sizes.seq_len, steps, seed=seed + offset)
        train(model, batches, steps=steps, lr=lr, weight_decay=0.0, seed=seed + offset, progress=False)
        models.append(model.eval())
    return models[0], models[1], text


def train_mtp_heads(target: Transformer, text: PhraseText, depths: int = 2, form: str = "sequential",
                    steps: int = 100, lr: float = 1e-2, batch_size: int = 16, seq_len: int = 32, seed: int = 0):
    """Add `depths` MTP heads to a trained `target` and train only them (its trunk frozen); return the MTPModel.

    The main model is left exactly as it was, so self-speculative decoding with these heads emits the target's
    greedy tokens, and its speed can be set against a separate draft's on the same target.
    """
    from .mtp import MTP, MTPModel

    positive_int("steps", steps)
    set_seed(seed)
    model = MTPModel(target, MTP(depths=depths, form=form))
    optimizer = torch.optim.AdamW(model.heads.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    for inputs, targets in text.batches(batch_size, seq_len, steps, seed=seed + 2):
        loss = model.loss(inputs, targets, trunk_gradient=False)  # (B, T) -> the heads' loss reaches only them
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.heads.parameters(), 1.0)
        optimizer.step()
    return model.eval()
