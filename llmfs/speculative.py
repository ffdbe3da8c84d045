"""Speculative decoding (Leviathan et al. 2023; Chen et al. 2023): a cheap draft model proposes `k` tokens,
the target checks all of them in one forward pass, and an acceptance rule keeps the output distributed
exactly as the target's own samples (greedy: exactly the target's greedy tokens).

The rule, for a drafted token x with draft probability q(x) and target probability p(x): accept with
probability min(1, p(x)/q(x)); on the first rejection sample from the normalised residual max(0, p - q)
and stop; if all k are accepted, sample one bonus token from the target's next distribution.

Both models keep KV caches; rejected tokens are rolled back with `KVCache.truncate`. Layers whose caches
cannot roll back (ring-buffer windows, recurrent linear-attention states) are refused up front.
"""

from dataclasses import dataclass, field

import torch

from .generate import check_decoding_arguments


@dataclass
class SpeculativeStats:
    """What one `speculative_generate` call did: rounds (target passes), drafted and accepted tokens."""

    rounds: int = 0
    drafted: int = 0
    accepted: int = 0
    accepted_per_round: list = field(default_factory=list)

    @property
    def acceptance_rate(self) -> float:
        """Accepted drafted tokens / drafted tokens (alpha, measured)."""
        return self.accepted / self.drafted if self.drafted else float("nan")

    @property
    def tokens_per_round(self) -> float:
        """Tokens emitted per target pass (accepted + the corrected or bonus one)."""
        return (self.accepted + self.rounds) / self.rounds if self.rounds else float("nan")


def expected_tokens_per_round(alpha: float, k: int) -> float:
    """Expected tokens per target pass with acceptance rate alpha and k drafts: (1 - alpha^(k+1)) / (1 - alpha)."""
    if alpha == 1:
        return k + 1.0
    return (1 - alpha ** (k + 1)) / (1 - alpha)


def expected_speedup(alpha: float, k: int, draft_cost: float) -> float:
    """Leviathan et al.'s expected walltime improvement, draft_cost = draft step time / target step time."""
    return expected_tokens_per_round(alpha, k) / (k * draft_cost + 1)


def probabilities(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Next-token distribution from logits (..., vocab): softmax(logits / T), or one-hot argmax when T = 0."""
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(dim=-1), logits.shape[-1]).float()
    return torch.softmax(logits.float() / temperature, dim=-1)


def accept_or_correct(p: torch.Tensor, q: torch.Tensor, drafted: torch.Tensor, generator=None):
    """The acceptance rule for k drafted tokens of one sequence.

    p: (k + 1, vocab) target probabilities at the k drafted positions and the one after; q: (k, vocab) draft
    probabilities; drafted: (k,) token ids. Returns (n_accepted, next_token): the next token is drawn from
    max(0, p - q) normalised at the first rejection, or from p[k] (the bonus) when all k are accepted.
    """
    k = drafted.shape[0]
    positions = torch.arange(k)
    ratio = p[positions, drafted] / q[positions, drafted]  # (k,) q(x) > 0: x was sampled from q
    u = torch.rand(k, generator=generator)
    rejected = (u >= ratio).nonzero()
    if len(rejected) == 0:
        return k, torch.multinomial(p[k], 1, generator=generator)
    n = int(rejected[0])
    residual = (p[n] - q[n]).clamp(min=0)
    if residual.sum() <= 0:  # p == q up to rounding: rejection had probability ~0; fall back to p
        residual = p[n]
    return n, torch.multinomial(residual / residual.sum(), 1, generator=generator)


def check_one_sequence_fits(idx, max_new_tokens: int, context_length: int) -> None:
    """Speculative decoding's own rules for `idx`: one sequence (batch 1), with room for the new tokens."""
    if idx.shape[0] != 1:
        raise ValueError(f"idx must be one sequence of at least one token, shape (1, T); got {tuple(idx.shape)}.")
    if idx.shape[1] + max_new_tokens > context_length:
        raise ValueError(f"generating {max_new_tokens} tokens after {idx.shape[1]} would exceed context_length="
                         f"{context_length}; ask for at most {context_length - idx.shape[1]} new tokens.")


def _check_inputs(target, draft, idx, max_new_tokens, k, temperature):
    check_decoding_arguments(idx, max_new_tokens, temperature)
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k (tokens drafted per round) must be a positive integer, got {k!r}.")
    if draft.config.vocab_size != target.config.vocab_size:
        raise ValueError(f"draft vocab_size={draft.config.vocab_size} differs from target vocab_size="
                         f"{target.config.vocab_size}; the draft must share the target's vocabulary.")
    if draft.config.context_length != target.config.context_length:
        raise ValueError(f"draft context_length={draft.config.context_length} differs from target context_length="
                         f"{target.config.context_length}; use models with the same context length.")
    check_one_sequence_fits(idx, max_new_tokens, target.config.context_length)


@torch.no_grad()
def speculative_generate(target, draft, idx, max_new_tokens, k=4, temperature=0.0, generator=None,
                         return_stats=False):
    """Append `max_new_tokens` tokens to `idx` (1, T), drafting `k` per round with `draft`, checked by `target`.

    temperature=0: the same tokens as `generate(target, idx, max_new_tokens)`; otherwise samples distributed
    as the target's at that temperature. With return_stats=True returns (ids, SpeculativeStats).
    """
    _check_inputs(target, draft, idx, max_new_tokens, k, temperature)
    stats = SpeculativeStats()
    out = idx.long()
    modes = (target.training, draft.training)
    target.eval()
    draft.eval()
    try:
        target_cache, draft_cache = target.new_cache(1), draft.new_cache(1)
        for name, cache in (("target", target_cache), ("draft", draft_cache)):
            if not cache.can_truncate:
                raise ValueError(f"the {name} model has layers whose caches cannot roll back "
                                 f"({', '.join(sorted({type(c).__name__ for c in cache.layers}))}); "
                                 "speculative decoding needs full key/value caches.")
            cache.reserve(idx.shape[1] + max_new_tokens + k + 1)
        if idx.shape[1] > 1:  # invariant: the target cache holds every token but the last (the pending one)
            target(out[:, :-1], cache=target_cache)
        goal = idx.shape[1] + max_new_tokens
        while out.shape[1] < goal:
            n_draft = min(k, goal - out.shape[1])  # never draft past the end (nor past context_length)
            # draft: catch up on the tokens it has not seen (the pending one, or two after a full acceptance)
            logits = draft(out[:, draft_cache.length:], cache=draft_cache)[:, -1]  # (1, vocab)
            drafted, q = [], []
            for i in range(n_draft):
                q.append(probabilities(logits[0], temperature))
                token = q[-1].argmax() if temperature == 0 else torch.multinomial(q[-1], 1, generator=generator)[0]
                drafted.append(token)
                if i < n_draft - 1:
                    logits = draft(token.view(1, 1), cache=draft_cache)[:, -1]
            drafted = torch.stack(drafted)  # (n_draft,)
            # target: the pending token and all drafts in one pass -> n_draft + 1 distributions
            p = probabilities(target(torch.cat((out[:, -1:], drafted[None]), dim=1), cache=target_cache)[0],
                              temperature)  # (n_draft + 1, vocab)
            n_accepted, next_token = accept_or_correct(p, torch.stack(q), drafted, generator)
            out = torch.cat((out, drafted[None, :n_accepted], next_token.view(1, 1)), dim=1)
            target_cache.truncate(out.shape[1] - 1)  # keep the accepted drafts; the new token is pending
            draft_cache.truncate(min(draft_cache.length, out.shape[1] - 1))
            stats.rounds += 1
            stats.drafted += n_draft
            stats.accepted += n_accepted
            stats.accepted_per_round.append(n_accepted)
    finally:
        target.train(modes[0])
        draft.train(modes[1])
    out = out[:, :goal].to(idx.dtype)
    return (out, stats) if return_stats else out

