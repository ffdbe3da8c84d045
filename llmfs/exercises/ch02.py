"""Exercises of chapter 2 (Self-attention to multi-head attention): reference solutions and their random inputs."""

import math

import torch

from llmfs.attention import causal_mask as _llmfs_causal_mask
from llmfs.attention import scaled_dot_product_attention
from llmfs.exercises import Exercise, register

# --- causal mask ---------------------------------------------------------------------------------


def causal_mask(T):
    """T -> (T, T) bool: True where query i may attend to key j, i.e. j <= i."""
    return _llmfs_causal_mask(T)


register(
    Exercise(
        id="ch02.causal_mask",
        summary="The (T, T) boolean mask that lets position i see positions 0..i and nothing later.",
        reference=causal_mask,
        cases=lambda gen: [(1,), (2,)] + [(int(torch.randint(3, 12, (1,), generator=gen)),) for _ in range(3)],
    )
)


# --- attention weights ---------------------------------------------------------------------------


def attention_weights(q, k):
    """q (B, T, d), k (B, T, d) -> (B, T, T): causal softmax of q kᵀ / √d over the keys."""
    T = q.shape[-2]
    return scaled_dot_product_attention(q, k, k, _llmfs_causal_mask(T))[1]


def _weights_cases(gen):
    cases = []
    for B, T, d in [(1, 1, 4), (2, 5, 8), (3, 9, 64)]:
        # Scores of size ~3 make a missing 1/√d or a missing mask clearly visible.
        cases.append((torch.randn(B, T, d, generator=gen), torch.randn(B, T, d, generator=gen)))
    return cases


register(
    Exercise(
        id="ch02.attention_weights",
        summary="Scaled, causally masked softmax weights of single-head attention from queries and keys.",
        reference=attention_weights,
        cases=_weights_cases,
    )
)


# --- split and merge heads -----------------------------------------------------------------------


def split_heads(x, n_heads):
    """x (B, T, n_heads * head_dim) -> (B, n_heads, T, head_dim): head h holds features h*head_dim..(h+1)*head_dim-1."""
    B, T, D = x.shape
    return x.view(B, T, n_heads, D // n_heads).transpose(1, 2)


def _split_cases(gen):
    return [(torch.randn(B, T, H * hd, generator=gen), H) for B, T, H, hd in [(1, 1, 1, 3), (2, 5, 4, 2), (3, 7, 3, 5)]]


register(
    Exercise(
        id="ch02.split_heads",
        summary="Reshape (B, T, D) projections into (B, n_heads, T, head_dim), one slice of features per head.",
        reference=split_heads,
        cases=_split_cases,
    )
)


def merge_heads(x):
    """x (B, n_heads, T, head_dim) -> (B, T, n_heads * head_dim): the heads' outputs side by side, head 0 first."""
    B, H, T, hd = x.shape
    return x.transpose(1, 2).reshape(B, T, H * hd)


def _merge_cases(gen):
    return [(torch.randn(B, H, T, hd, generator=gen),) for B, H, T, hd in [(1, 1, 1, 3), (2, 4, 5, 2), (3, 3, 7, 5)]]


register(
    Exercise(
        id="ch02.merge_heads",
        summary="Undo split_heads: concatenate the heads' outputs (B, n_heads, T, head_dim) into (B, T, D).",
        reference=merge_heads,
        cases=_merge_cases,
    )
)


# --- multi-head attention ------------------------------------------------------------------------


def multi_head_attention(x, W_q, W_k, W_v, W_o, n_heads):
    """x (B, T, D); W_q, W_k, W_v, W_o (D, D) as nn.Linear weights (y = x @ W.T), no biases -> (B, T, D), causal."""
    q, k, v = (split_heads(x @ W.T, n_heads) for W in (W_q, W_k, W_v))  # (B, n_heads, T, head_dim)
    out, _ = scaled_dot_product_attention(q, k, v, _llmfs_causal_mask(x.shape[1]))
    return merge_heads(out) @ W_o.T


def _mha_cases(gen):
    cases = []
    for B, T, H, hd in [(1, 1, 1, 4), (2, 6, 2, 4), (2, 9, 4, 8)]:
        D = H * hd
        weights = [torch.randn(D, D, generator=gen) / math.sqrt(D) for _ in range(4)]
        cases.append((torch.randn(B, T, D, generator=gen), *weights, H))
    return cases


register(
    Exercise(
        id="ch02.multi_head_attention",
        summary="Causal multi-head self-attention from x and the four projection matrices, heads computed at once.",
        reference=multi_head_attention,
        cases=_mha_cases,
    )
)


# --- the bigram baseline -------------------------------------------------------------------------


def bigram_loss(train_ids, val_ids, vocab_size, smoothing):
    """Validation loss (nats per token) of a bigram count model with add-`smoothing` counts.

    p(b | a) = (count(a, b) + smoothing) / (count(a) + smoothing * vocab_size), counts from consecutive
    training pairs; the loss is the mean of -log p over consecutive validation pairs.
    """
    from llmfs.baselines import ngram_loss

    return ngram_loss(train_ids, val_ids, 2, vocab_size, smoothing)


def _bigram_cases(gen):
    cases = [(torch.arange(5).repeat(20), torch.arange(5).repeat(3), 5, 0.1)]
    for V in (3, 7, 20):
        train = torch.randint(0, V, (int(torch.randint(50, 300, (1,), generator=gen)),), generator=gen)
        cases.append((train, torch.randint(0, V, (40,), generator=gen), V, [0.01, 0.5, 1.0][V % 3]))
    return cases


register(
    Exercise(
        id="ch02.bigram_loss",
        summary="The loss of the bigram count model: the baseline a trained model must beat.",
        reference=bigram_loss,
        cases=_bigram_cases,
    )
)


# --- ablating one head ---------------------------------------------------------------------------


def ablate_head(out_proj_weight, head, head_dim):
    """A copy of an output projection's weight (d_model, n_heads * head_dim) with head `head`'s columns zeroed.

    Head h's output occupies input features h * head_dim ... (h + 1) * head_dim - 1 of the output
    projection, so zeroing those columns removes that head from the layer and nothing else.
    """
    ablated = out_proj_weight.clone()
    ablated[:, head * head_dim : (head + 1) * head_dim] = 0
    return ablated


def _ablate_cases(gen):
    cases = []
    for d_model, n_heads, head_dim in [(4, 2, 2), (8, 4, 2), (6, 3, 4), (5, 1, 3)]:
        weight = torch.randn(d_model, n_heads * head_dim, generator=gen)
        cases.append((weight, int(torch.randint(0, n_heads, (1,), generator=gen)), head_dim))
    return cases


register(
    Exercise(
        id="ch02.ablate_head",
        summary="Switch one attention head off by zeroing its columns of the output projection.",
        reference=ablate_head,
        cases=_ablate_cases,
    )
)
