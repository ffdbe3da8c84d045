"""Exercises of chapter 3 (The KV cache, GQA and MQA): reference solutions and their random inputs."""

import torch

from llmfs.attention import position_mask, scaled_dot_product_attention
from llmfs.exercises import Exercise, register


def _int(gen, low, high):
    """A random integer in [low, high] drawn from the seeded generator."""
    return int(torch.randint(low, high + 1, (1,), generator=gen))


# --- tokens processed by a generation loop -----------------------------------------------------------


def tokens_processed(prompt_len, new_tokens, use_cache):
    """Token positions fed to the model to generate `new_tokens` (>= 1) after a prompt of `prompt_len`.

    One prefill of the prompt, then one forward call per new token except the last (it is never fed):
    the whole sequence so far without a cache, only the newest token with one.
    """
    if use_cache:
        return prompt_len + (new_tokens - 1)
    return sum(prompt_len + step for step in range(new_tokens))


def _tokens_cases(gen):
    cases = [(1, 1, False), (1, 1, True), (16, 48, False), (16, 48, True)]
    for _ in range(4):
        cases.append((_int(gen, 1, 200), _int(gen, 1, 300), bool(_int(gen, 0, 1))))
    return cases


register(
    Exercise(
        id="ch03.tokens_processed",
        summary="Token positions a generation loop pushes through the model, with and without a KV cache.",
        reference=tokens_processed,
        cases=_tokens_cases,
    )
)


# --- KV-cache size -----------------------------------------------------------------------------------


def kv_cache_bytes(n_layers, n_kv_heads, head_dim, seq_len, batch_size, bytes_per_value):
    """Bytes of a KV cache: a key and a value vector per layer, K/V head, token and sequence."""
    return 2 * n_layers * n_kv_heads * head_dim * seq_len * batch_size * bytes_per_value


def _bytes_cases(gen):
    cases = [(1, 32, 128, 131072, 1, 2)]  # the chapter's worked example: one layer, 2 GiB
    for _ in range(5):
        cases.append((
            _int(gen, 1, 80), 2 ** _int(gen, 0, 6), 2 ** _int(gen, 5, 8), _int(gen, 1, 200_000),
            _int(gen, 1, 16), 2 ** _int(gen, 0, 2),
        ))
    return cases


register(
    Exercise(
        id="ch03.kv_cache_bytes",
        summary="The KV-cache size formula 2 x layers x kv_heads x head_dim x tokens x batch x bytes.",
        reference=kv_cache_bytes,
        cases=_bytes_cases,
    )
)


# --- append to the cache -----------------------------------------------------------------------------


def append_to_cache(past_k, past_v, k, v):
    """past (B, H, T_past, d) and new (B, H, T_new, d) -> (k_all, v_all), each (B, H, T_past + T_new, d)."""
    return torch.cat((past_k, k), dim=2), torch.cat((past_v, v), dim=2)


def _append_cases(gen):
    cases = []
    for B, H, T_past, T_new, d in [(1, 1, 0, 3, 2), (2, 4, 5, 1, 8), (3, 2, 7, 4, 4), (1, 8, 12, 1, 16)]:
        cases.append((
            torch.randn(B, H, T_past, d, generator=gen), torch.randn(B, H, T_past, d, generator=gen),
            torch.randn(B, H, T_new, d, generator=gen), torch.randn(B, H, T_new, d, generator=gen),
        ))
    return cases


register(
    Exercise(
        id="ch03.append_to_cache",
        summary="Append new keys and values to the cached ones along the sequence axis.",
        reference=append_to_cache,
        cases=_append_cases,
    )
)


# --- the mask of a decode step -------------------------------------------------------------------------


def decode_step_mask(T_past, T_new):
    """(T_new, T_past + T_new) boolean mask: the query at position T_past + i may see keys 0 ... T_past + i."""
    return position_mask(torch.arange(T_past, T_past + T_new), torch.arange(T_past + T_new))


def _mask_cases(gen):
    cases = [(0, 1), (0, 5), (7, 1), (3, 4)]
    for _ in range(3):
        cases.append((_int(gen, 0, 20), _int(gen, 1, 8)))
    return cases


register(
    Exercise(
        id="ch03.decode_step_mask",
        summary="The causal mask for T_new new queries that follow T_past cached tokens.",
        reference=decode_step_mask,
        cases=_mask_cases,
    )
)


# --- repeat K/V heads ----------------------------------------------------------------------------------


def repeat_kv(x, n_rep):
    """x (B, n_kv_heads, T, d) -> (B, n_kv_heads * n_rep, T, d): output head h is input head h // n_rep."""
    return x.repeat_interleave(n_rep, dim=1)


def _repeat_cases(gen):
    cases = []
    for B, n_kv, T, d, n_rep in [(1, 1, 3, 2, 1), (2, 1, 4, 3, 4), (2, 2, 5, 4, 3), (1, 4, 2, 8, 2)]:
        cases.append((torch.randn(B, n_kv, T, d, generator=gen), n_rep))
    return cases


register(
    Exercise(
        id="ch03.repeat_kv",
        summary="Expand n_kv_heads key/value heads to n_heads, each serving a consecutive group of query heads.",
        reference=repeat_kv,
        cases=_repeat_cases,
    )
)


# --- grouped-query attention ------------------------------------------------------------------------


def gqa_attention(q, k, v):
    """q (B, n_heads, T_q, d), k and v (B, n_kv_heads, T_k, d), T_q <= T_k -> (B, n_heads, T_q, d).

    Causal grouped-query attention: the queries are the last T_q of the T_k positions, and query head h
    reads key/value head h // (n_heads // n_kv_heads).
    """
    n_rep = q.shape[1] // k.shape[1]
    T_q, T_k = q.shape[2], k.shape[2]
    mask = position_mask(torch.arange(T_k - T_q, T_k), torch.arange(T_k))
    out, _ = scaled_dot_product_attention(q, repeat_kv(k, n_rep), repeat_kv(v, n_rep), mask)
    return out


def _gqa_cases(gen):
    cases = []
    # (B, n_heads, n_kv_heads, T_q, T_k, d): MHA, GQA, MQA; a prefill (T_q = T_k) and decode steps.
    for B, H, H_kv, T_q, T_k, d in [(1, 2, 2, 3, 3, 4), (2, 4, 2, 5, 5, 8), (1, 8, 1, 1, 9, 4), (2, 6, 3, 2, 7, 8)]:
        cases.append((
            torch.randn(B, H, T_q, d, generator=gen),
            torch.randn(B, H_kv, T_k, d, generator=gen),
            torch.randn(B, H_kv, T_k, d, generator=gen),
        ))
    return cases


register(
    Exercise(
        id="ch03.gqa_attention",
        summary="Causal attention where groups of query heads share key/value heads, for prefill and decode.",
        reference=gqa_attention,
        cases=_gqa_cases,
    )
)


# --- uptraining MHA into GQA: mean-pool the K/V heads --------------------------------------------------


def mean_pool_kv_heads(weight, n_kv_heads, head_dim):
    """A K or V projection weight (n_heads * head_dim, d_model) of MHA -> (n_kv_heads * head_dim, d_model).

    K/V head g of the GQA layer is the mean of the MHA heads of its group, g * group ... (g + 1) * group - 1,
    the conversion Ainslie et al. start uptraining from.
    """
    d_model = weight.shape[1]
    heads = weight.view(n_kv_heads, -1, head_dim, d_model)  # (n_kv_heads, group, head_dim, d_model)
    return heads.mean(dim=1).reshape(n_kv_heads * head_dim, d_model)


def _pool_cases(gen):
    cases = []
    for n_heads, n_kv_heads, head_dim, d_model in [(4, 2, 3, 5), (8, 1, 4, 6), (6, 3, 2, 4), (4, 4, 3, 2)]:
        cases.append((torch.randn(n_heads * head_dim, d_model, generator=gen), n_kv_heads, head_dim))
    return cases


register(
    Exercise(
        id="ch03.mean_pool_kv_heads",
        summary="Turn an MHA layer's K or V projection into a GQA one by averaging the heads of each group.",
        reference=mean_pool_kv_heads,
        cases=_pool_cases,
    )
)


# --- bytes read by one decode step ---------------------------------------------------------------------


def decode_bytes_per_step(n_params, n_layers, n_kv_heads, head_dim, context, batch_size, bytes_per_value):
    """Bytes one decode step must read: every weight once, plus the KV cache of every sequence of the batch."""
    weights = n_params * bytes_per_value
    cache = 2 * n_layers * n_kv_heads * head_dim * context * batch_size * bytes_per_value
    return weights + cache


def _decode_bytes_cases(gen):
    cases = [(8_030_000_000, 32, 8, 128, 8192, 1, 2), (8_030_000_000, 32, 32, 128, 8192, 16, 2)]
    for _ in range(4):
        cases.append((_int(gen, 10**6, 10**10), _int(gen, 1, 80), _int(gen, 1, 16), 2 ** _int(gen, 5, 8),
                      _int(gen, 1, 131072), _int(gen, 1, 64), _int(gen, 1, 4)))
    return cases


register(
    Exercise(
        id="ch03.decode_bytes_per_step",
        summary="Bytes a decode step reads (weights plus the whole KV cache), from first principles.",
        reference=decode_bytes_per_step,
        cases=_decode_bytes_cases,
    )
)
