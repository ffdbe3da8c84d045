"""Exercises of chapter 1 (Why attention: the RNN bottleneck): reference solutions and their random inputs."""

import torch

from llmfs.exercises import Exercise, register
from llmfs.rnn import padding_mask


def _lengths(gen, batch, max_len):
    """Random lengths in [1, max_len] with at least one row of full length, so T is really used."""
    lengths = torch.randint(1, max_len + 1, (batch,), generator=gen)
    lengths[0] = max_len
    return lengths


# --- additive (Bahdanau) score -------------------------------------------------------------------


def additive_score(query, keys, W_q, W_k, v):
    """query (B, Hq), keys (B, T, Hk), W_q (A, Hq), W_k (A, Hk), v (A,) -> scores (B, T)."""
    features = torch.tanh((query @ W_q.T)[:, None, :] + keys @ W_k.T)  # (B, T, A)
    return features @ v                                                # (B, T)


def _additive_cases(gen):
    cases = []
    for B, T, Hq, Hk, A in [(1, 1, 3, 3, 2), (2, 5, 4, 6, 3), (3, 7, 8, 8, 5)]:
        cases.append(
            (
                torch.randn(B, Hq, generator=gen),
                torch.randn(B, T, Hk, generator=gen),
                torch.randn(A, Hq, generator=gen),
                torch.randn(A, Hk, generator=gen),
                torch.randn(A, generator=gen),
            )
        )
    return cases


register(
    Exercise(
        id="ch01.additive_score",
        summary="Bahdanau's additive score v^T tanh(W_q s + W_k h_j) for every key at once.",
        reference=additive_score,
        cases=_additive_cases,
    )
)


# --- masked softmax ----------------------------------------------------------------------------------


def masked_softmax(scores, lengths):
    """scores (B, T), lengths (B,) -> weights (B, T): softmax over the first lengths[b] positions, 0 after."""
    mask = padding_mask(lengths, scores.shape[1])  # (B, T)
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)


def _masked_softmax_cases(gen):
    cases = []
    for B, T in [(1, 1), (2, 4), (4, 9)]:
        # Large scores at padding positions make an unmasked softmax clearly wrong.
        scores = 3 * torch.randn(B, T, generator=gen)
        cases.append((scores, _lengths(gen, B, T)))
    return cases


register(
    Exercise(
        id="ch01.masked_softmax",
        summary="Softmax over real tokens only: padding positions get weight exactly zero.",
        reference=masked_softmax,
        cases=_masked_softmax_cases,
    )
)


# --- dot-product attention -----------------------------------------------------------------------


def dot_product_attention(query, keys, lengths):
    """query (B, H), keys (B, T, H), lengths (B,) -> context (B, H), weights (B, T), with score s . h_j."""
    scores = (keys @ query[:, :, None])[:, :, 0]  # (B, T)
    weights = masked_softmax(scores, lengths)     # (B, T)
    context = (weights[:, :, None] * keys).sum(dim=1)  # (B, H)
    return context, weights


def _dot_cases(gen):
    cases = []
    for B, T, H in [(1, 1, 2), (2, 5, 4), (3, 8, 6)]:
        cases.append((torch.randn(B, H, generator=gen), torch.randn(B, T, H, generator=gen), _lengths(gen, B, T)))
    return cases


register(
    Exercise(
        id="ch01.dot_product_attention",
        summary="Attention with a multiplicative score s . h_j instead of the additive one, padding masked.",
        reference=dot_product_attention,
        cases=_dot_cases,
    )
)


# --- alignment accuracy --------------------------------------------------------------------------


def alignment_accuracy(weights, lengths):
    """weights (B, S, T), lengths (B,) -> float: share of steps t < lengths[b] whose largest weight is at t."""
    steps = torch.arange(weights.shape[1])                         # (S,)
    hits = weights.argmax(dim=-1) == steps[None, :]                # (B, S)
    counted = steps[None, :] < lengths[:, None]                    # (B, S)
    return (hits & counted).sum().item() / counted.sum().item()


def _alignment_cases(gen):
    cases = []
    for B, T in [(1, 3), (3, 6), (5, 10)]:
        S = T + 1  # one more decoder step than source tokens: the EOS step
        lengths = _lengths(gen, B, T)
        # Mostly diagonal weights plus noise, so some steps align and some do not.
        logits = 2.0 * torch.eye(S, T)[None] + torch.randn(B, S, T, generator=gen)
        logits = logits.masked_fill(~padding_mask(lengths, T)[:, None, :], float("-inf"))
        cases.append((torch.softmax(logits, dim=-1), lengths))
    return cases


register(
    Exercise(
        id="ch01.alignment_accuracy",
        summary="How often a copying model's attention peaks on the source token it should be copying.",
        reference=alignment_accuracy,
        cases=_alignment_cases,
    )
)


# --- reverse padded sequences --------------------------------------------------------------------


def reverse_padded(tokens, lengths):
    """tokens (B, T), lengths (B,) -> (B, T): each row's first lengths[b] tokens reversed, padding left in place."""
    out = tokens.clone()
    for b, n in enumerate(lengths.tolist()):
        out[b, :n] = tokens[b, :n].flip(0)
    return out


def _reverse_cases(gen):
    cases = []
    for B, T in [(1, 1), (2, 5), (4, 8)]:
        lengths = _lengths(gen, B, T)
        tokens = torch.randint(3, 13, (B, T), generator=gen)
        tokens = tokens.masked_fill(~padding_mask(lengths, T), 0)
        cases.append((tokens, lengths))
    return cases


register(
    Exercise(
        id="ch01.reverse_padded",
        summary="Reverse every sequence of a padded batch without moving its padding (Sutskever's input trick).",
        reference=reverse_padded,
        cases=_reverse_cases,
    )
)
