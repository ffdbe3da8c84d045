"""Exercises of chapter 11 (The architecture gallery): reference solutions and random inputs."""

import torch

from llmfs.exercises import Exercise, register


def _int(gen, low, high):
    return int(torch.randint(low, high + 1, (1,), generator=gen))


def moe_active_parameters(d_model, n_layers, vocab_size, n_heads, n_kv_heads, head_dim, n_experts, top_k, d_expert,
                          n_shared):
    """Active parameters per token of a GQA + SwiGLU-MoE model with untied embeddings, no biases, RMSNorms
    (2 per layer + 1 final) and a router (d_model x n_experts) per layer: the embedding row is counted whole."""
    attention = d_model * head_dim * (2 * n_heads + 2 * n_kv_heads)
    experts = 3 * d_model * d_expert * (top_k + n_shared)
    per_layer = attention + experts + d_model * n_experts + 2 * d_model
    return n_layers * per_layer + 2 * vocab_size * d_model + d_model


def _moe_cases(gen):
    cases = []
    for _ in range(5):
        n_heads = 2 ** _int(gen, 1, 5)
        n_experts = _int(gen, 2, 64)
        cases.append((64 * _int(gen, 1, 64), _int(gen, 1, 64), _int(gen, 100, 200_000), n_heads,
                      n_heads // 2 ** _int(gen, 0, 1), 2 ** _int(gen, 5, 7), n_experts, _int(gen, 1, n_experts),
                      64 * _int(gen, 1, 32), _int(gen, 0, 2)))
    return cases


register(Exercise(id="ch11.moe_active_parameters", summary="Active parameters of a MoE model from its config.",
                  reference=moe_active_parameters, cases=_moe_cases))


def hybrid_kv_cache_bytes(seq_len, n_layers, local_every, window, n_kv_heads, head_dim, bytes_per_value):
    """KV cache bytes of one sequence in a model where, of every `local_every + 1` layers, the first
    `local_every` use a sliding window (holding min(seq_len, window) tokens) and the last is global
    (n_layers need not be a multiple: the pattern simply repeats and is cut)."""
    total = 0
    for layer in range(n_layers):
        held = min(seq_len, window) if layer % (local_every + 1) < local_every else seq_len
        total += 2 * n_kv_heads * head_dim * held * bytes_per_value
    return total


def _cache_cases(gen):
    return [(_int(gen, 1, 200_000), _int(gen, 1, 64), _int(gen, 0, 7), 2 ** _int(gen, 7, 13), _int(gen, 1, 16),
             2 ** _int(gen, 5, 8), 2 ** _int(gen, 0, 2)) for _ in range(6)]


register(Exercise(id="ch11.hybrid_kv_cache_bytes", summary="KV cache of a local/global model (Gemma 3's pattern).",
                  reference=hybrid_kv_cache_bytes, cases=_cache_cases))


def dense_flops_per_token(seq_len, d_model, n_layers, vocab_size, n_heads, n_kv_heads, head_dim, d_ff):
    """Forward FLOPs of one token attending to seq_len tokens in a GQA + SwiGLU model: 2 per weight of every
    matrix (q, k, v, o, the three FFN matrices, the output head) plus 4 * n_heads * head_dim per key."""
    weights = n_layers * (d_model * head_dim * (2 * n_heads + 2 * n_kv_heads) + 3 * d_model * d_ff)
    weights += vocab_size * d_model
    return 2 * weights + n_layers * 4 * n_heads * head_dim * seq_len


def _flops_cases(gen):
    cases = []
    for _ in range(5):
        n_heads = 2 ** _int(gen, 1, 6)
        cases.append((_int(gen, 1, 131_072), 128 * _int(gen, 1, 64), _int(gen, 1, 80), _int(gen, 100, 200_000),
                      n_heads, n_heads // 2 ** _int(gen, 0, 2) or 1, 2 ** _int(gen, 5, 7), 256 * _int(gen, 1, 100)))
    return cases


register(Exercise(id="ch11.dense_flops_per_token", summary="FLOPs per token of a dense model, by hand.",
                  reference=dense_flops_per_token, cases=_flops_cases))


def mla_cache_ratio(n_heads, head_dim, kv_lora_rank, qk_rope_head_dim):
    """How many times smaller MLA's per-layer cache (latent + rotary key) is than MHA's with n_heads of head_dim."""
    return 2 * n_heads * head_dim / (kv_lora_rank + qk_rope_head_dim)


def _mla_cases(gen):
    return [(_int(gen, 1, 128), 2 ** _int(gen, 5, 8), 64 * _int(gen, 1, 16), 2 * _int(gen, 4, 64))
            for _ in range(5)]


register(Exercise(id="ch11.mla_cache_ratio", summary="MLA's cache saving against MHA.",
                  reference=mla_cache_ratio, cases=_mla_cases))


def max_context(memory_bytes, weight_bytes, cache_bytes_per_token, batch):
    """The longest context (whole tokens) whose cache for `batch` sequences fits beside the weights in
    `memory_bytes` (0 if the weights alone do not fit)."""
    free = memory_bytes - weight_bytes
    return max(0, free // (cache_bytes_per_token * batch))


def _context_cases(gen):
    return [(_int(gen, 1, 200) * 2**30, _int(gen, 1, 150) * 2**30, _int(gen, 1_000, 500_000), _int(gen, 1, 64))
            for _ in range(6)]


register(Exercise(id="ch11.max_context", summary="The longest context that fits in a GPU's memory.",
                  reference=max_context, cases=_context_cases))
