"""Exercises of chapter 9 (Linear attention, DeltaNet and the hybrids): reference solutions and their random inputs."""

import torch

from llmfs.exercises import Exercise, register
from llmfs.linear_attention import elu_feature_map, l2_normalize


def _int(gen, low, high):
    """A random integer in [low, high] drawn from the seeded generator."""
    return int(torch.randint(low, high + 1, (1,), generator=gen))


def _qkv(gen, B=2, H=3, d_k=8, d_v=4, T=None):
    """Random unit queries and keys, values, and a state, for one step (T None) or T steps."""
    shape = (B, H) if T is None else (B, H, T)
    q = l2_normalize(torch.randn(*shape, d_k, generator=gen))
    k = l2_normalize(torch.randn(*shape, d_k, generator=gen))
    v = torch.randn(*shape, d_v, generator=gen)
    state = torch.randn(B, H, d_k, d_v, generator=gen)
    return q, k, v, state


# --- one step of linear attention ------------------------------------------------------------------------


def linear_attention_step(state, q, k, v):
    """state (B, H, d_k, d_v), q, k (B, H, d_k), v (B, H, d_v) -> (output (B, H, d_v), new state): S += k vᵀ, o = Sᵀ q."""
    state = state + k[..., :, None] * v[..., None, :]
    return torch.einsum("bhkv,bhk->bhv", state, q), state


def _step_cases(gen):
    cases = []
    for _ in range(3):
        q, k, v, state = _qkv(gen, d_k=_int(gen, 2, 16), d_v=_int(gen, 1, 16))
        cases.append((state, q, k, v))
    return cases


register(Exercise(
    id="ch09.linear_attention_step",
    summary="One recurrent step of linear attention: add k vᵀ to the state, read it with q.",
    reference=linear_attention_step,
    cases=_step_cases,
))


# --- one step of the gated delta rule --------------------------------------------------------------------


def gated_delta_step(state, q, k, v, beta, alpha):
    """One Gated DeltaNet step: decay the state by alpha (B, H), write beta (B, H) times (v - what it predicts for k)."""
    state = state * alpha[..., None, None]
    predicted = torch.einsum("bhkv,bhk->bhv", state, k)
    state = state + k[..., :, None] * (beta[..., None] * (v - predicted))[..., None, :]
    return torch.einsum("bhkv,bhk->bhv", state, q), state


def _delta_cases(gen):
    cases = []
    for _ in range(3):
        q, k, v, state = _qkv(gen, d_k=_int(gen, 2, 16), d_v=_int(gen, 1, 16))
        beta, alpha = torch.rand(2, 3, generator=gen), torch.rand(2, 3, generator=gen)
        cases.append((state, q, k, v, beta, alpha))
    q, k, v, state = _qkv(gen)
    cases.append((state, q, k, v, torch.ones(2, 3), torch.ones(2, 3)))  # DeltaNet with β = 1: overwrite
    return cases


register(Exercise(
    id="ch09.gated_delta_step",
    summary="One step of the gated delta rule: decay, then write the value minus the state's prediction.",
    reference=gated_delta_step,
    cases=_delta_cases,
))


# --- normalised linear attention (Katharopoulos et al.) ----------------------------------------------------


def normalized_linear_attention(q, k, v):
    """Causal linear attention with the elu+1 feature map and its normaliser: o_i = Σ_j≤i φ(q_i)ᵀφ(k_j) v_j / Σ_j≤i φ(q_i)ᵀφ(k_j).

    q, k (B, H, T, d_k), v (B, H, T, d_v) -> (B, H, T, d_v)."""
    fq, fk = elu_feature_map(q), elu_feature_map(k)
    state = torch.einsum("bhtk,bhtv->bhtkv", fk, v).cumsum(dim=2)  # S_i = Σ_j≤i φ(k_j) v_jᵀ
    normalizer = fk.cumsum(dim=2)  # z_i = Σ_j≤i φ(k_j)
    numerator = torch.einsum("bhtkv,bhtk->bhtv", state, fq)
    return numerator / (fq * normalizer).sum(-1, keepdim=True)


def _normalized_cases(gen):
    cases = []
    for _ in range(3):
        q, k, v, _ = _qkv(gen, d_k=_int(gen, 2, 8), d_v=_int(gen, 1, 8), T=_int(gen, 1, 20))
        cases.append((3 * q, 3 * k, v))
    return cases


register(Exercise(
    id="ch09.normalized_linear_attention",
    summary="Katharopoulos et al.'s linear attention: elu+1 features and a running normaliser.",
    reference=normalized_linear_attention,
    cases=_normalized_cases,
))


# --- cache bytes of a hybrid -------------------------------------------------------------------------------


def hybrid_cache_bytes(seq_len, n_linear, n_full, n_v_heads, d_k, d_v, conv_channels, conv_size, n_kv_heads,
                       head_dim, bytes_per_value):
    """Bytes one sequence's cache holds: per linear layer a d_k × d_v state per value head and the convolution's
    last conv_size - 1 inputs; per full-attention layer a key and a value per K/V head per token."""
    linear = n_v_heads * d_k * d_v + conv_channels * (conv_size - 1)
    full = 2 * n_kv_heads * head_dim * seq_len
    return (n_linear * linear + n_full * full) * bytes_per_value


def _hybrid_cases(gen):
    # Qwen3-Next-80B-A3B's shape at 256k tokens: 36 Gated DeltaNet layers and 12 full-attention layers, bf16.
    cases = [(262144, 36, 12, 32, 128, 128, 2 * 16 * 128 + 32 * 128, 4, 2, 256, 2)]
    for _ in range(4):
        cases.append((_int(gen, 0, 10 ** 6), _int(gen, 0, 40), _int(gen, 0, 20), 2 ** _int(gen, 0, 6),
                      2 ** _int(gen, 4, 8), 2 ** _int(gen, 4, 8), _int(gen, 1, 10_000), _int(gen, 1, 4),
                      2 ** _int(gen, 0, 3), 2 ** _int(gen, 6, 8), 2 ** _int(gen, 0, 2)))
    return cases


register(Exercise(
    id="ch09.hybrid_cache_bytes",
    summary="Cache bytes of a hybrid: fixed states for linear layers plus a growing KV cache for full attention.",
    reference=hybrid_cache_bytes,
    cases=_hybrid_cases,
))


# --- where a state is as big as a KV cache -----------------------------------------------------------------


def break_even_tokens(n_v_heads, d_k, d_v, n_kv_heads, head_dim):
    """The context length (an int, rounded up) from which one full-attention layer's KV cache holds at least
    as many numbers as one linear-attention layer's state (the convolution's few inputs ignored)."""
    state = n_v_heads * d_k * d_v
    per_token = 2 * n_kv_heads * head_dim
    return -(-state // per_token)


def _break_even_cases(gen):
    cases = [(32, 128, 128, 2, 256)]  # Qwen3-Next's two kinds of layer
    for _ in range(5):
        cases.append((2 ** _int(gen, 0, 6), 2 ** _int(gen, 4, 8), _int(gen, 16, 256), 2 ** _int(gen, 0, 5),
                      _int(gen, 32, 256)))
    return cases


register(Exercise(
    id="ch09.break_even_tokens",
    summary="The context length at which a KV cache outgrows a linear-attention state.",
    reference=break_even_tokens,
    cases=_break_even_cases,
))


# --- one chunk of the WY / UT form ------------------------------------------------------------------------


def delta_rule_chunk(state, q, k, v, beta):
    """One chunk of DeltaNet (no decay) in matrix form. state (B, H, d_k, d_v); q, k (B, H, C, d_k); v (B, H, C, d_v);
    beta (B, H, C). Returns (outputs (B, H, C, d_v), new state), equal to C recurrent steps."""
    C = k.shape[2]
    strictly_lower = torch.ones(C, C, dtype=torch.bool).tril(-1)
    b = beta[..., None]
    A = (b * (k @ k.transpose(-1, -2))).masked_fill(~strictly_lower, 0.0)
    system = torch.eye(C) + A  # (I + A) U = diag(β) (V - K S)
    u = torch.linalg.solve_triangular(system, b * (v - k @ state), upper=False)
    within = (q @ k.transpose(-1, -2)).tril()
    return q @ state + within @ u, state + k.transpose(-1, -2) @ u


def _chunk_cases(gen):
    cases = []
    for C in (1, 4, 16):
        q, k, v, state = _qkv(gen, T=C)
        cases.append((state, q, k, v, torch.rand(2, 3, C, generator=gen)))
    return cases


register(Exercise(
    id="ch09.delta_rule_chunk",
    summary="One chunk of the delta rule through a unit lower-triangular solve (the UT / WY form).",
    reference=delta_rule_chunk,
    cases=_chunk_cases,
))
