"""Exercises of chapter 4 (Multi-head latent attention): reference solutions and their random inputs."""

import torch

from llmfs.exercises import Exercise, register


def _int(gen, low, high):
    """A random integer in [low, high] drawn from the seeded generator."""
    return int(torch.randint(low, high + 1, (1,), generator=gen))


# --- the MLA cache size from a config ----------------------------------------------------------------------


def mla_cache_bytes_per_token(n_layers, kv_lora_rank, qk_rope_head_dim, bytes_per_value):
    """Bytes an MLA model caches per token of one sequence: the latent and the rotary key in every layer."""
    return n_layers * (kv_lora_rank + qk_rope_head_dim) * bytes_per_value


def _cache_cases(gen):
    cases = [(61, 512, 64, 2), (27, 512, 64, 2)]  # DeepSeek-V3, DeepSeek-V2-Lite
    for _ in range(4):
        cases.append((_int(gen, 1, 96), 2 ** _int(gen, 5, 10), 2 ** _int(gen, 3, 7), 2 ** _int(gen, 0, 2)))
    return cases


register(Exercise(id="ch04.mla_cache_bytes_per_token",
                  summary="KV-cache bytes per token of an MLA model, from its config.",
                  reference=mla_cache_bytes_per_token, cases=_cache_cases))


# --- weight absorption ---------------------------------------------------------------------------------------


def absorbed_scores(q_nope, w_uk, latent):
    """Content scores q_C · k_C of every head without building keys: (q_C W_UK) · c.

    q_nope (B, H, T, n), w_uk (H, n, r), latent (B, S, r) -> (B, H, T, S).
    """
    q_absorbed = torch.einsum("bhtn,hnr->bhtr", q_nope, w_uk)
    return q_absorbed @ latent[:, None].transpose(-2, -1)


def _absorb_cases(gen):
    cases = []
    for _ in range(4):
        B, H, T, S, n, r = _int(gen, 1, 3), _int(gen, 1, 6), _int(gen, 1, 5), _int(gen, 1, 9), _int(gen, 2, 8), _int(gen, 2, 12)
        cases.append((torch.randn(B, H, T, n, generator=gen), torch.randn(H, n, r, generator=gen),
                      torch.randn(B, S, r, generator=gen)))
    return cases


register(Exercise(id="ch04.absorbed_scores",
                  summary="Attention content scores from cached latents with W_UK absorbed into the query.",
                  reference=absorbed_scores, cases=_absorb_cases))


# --- decode FLOPs: where absorption wins -------------------------------------------------------------------


def decode_flops(context, n_heads, kv_lora_rank, nope_dim, rope_dim, v_dim, absorbed):
    """Multiply-add FLOPs (2 per multiply-add) of one MLA layer's attention for one decoded token over
    `context` cached tokens, after the query is projected and before the output projection.

    Naive: up-project every cached latent to keys and values (2·S·r·H·(n + v)), then scores over
    n + rope dims and the weighted sum of v-dim values. Absorbed: fold W_UK into the query (2·H·n·r), scores
    over r + rope dims, the weighted sum of r-dim latents, then W_UV on the result (2·H·r·v).
    """
    S, H, r, n, p, v = context, n_heads, kv_lora_rank, nope_dim, rope_dim, v_dim
    if absorbed:
        return 2 * H * n * r + 2 * S * H * (r + p) + 2 * S * H * r + 2 * H * r * v
    return 2 * S * r * H * (n + v) + 2 * S * H * (n + p) + 2 * S * H * v


def _flops_cases(gen):
    cases = [(4096, 128, 512, 128, 64, 128, True), (4096, 128, 512, 128, 64, 128, False)]
    for _ in range(4):
        cases.append((_int(gen, 1, 10_000), _int(gen, 1, 128), 2 ** _int(gen, 4, 9), 2 ** _int(gen, 4, 7),
                      2 ** _int(gen, 3, 6), 2 ** _int(gen, 4, 7), bool(_int(gen, 0, 1))))
    return cases


register(Exercise(id="ch04.decode_flops",
                  summary="FLOPs of one decoded token's MLA attention, naive or absorbed.",
                  reference=decode_flops, cases=_flops_cases))


# --- a rank cut -----------------------------------------------------------------------------------------------


def rank_cut(weight, rank):
    """The best rank-`rank` approximation of a matrix (Eckart–Young): keep its largest singular values."""
    u, s, vh = torch.linalg.svd(weight, full_matrices=False)
    return (u[:, :rank] * s[:rank]) @ vh[:rank]


def _rank_cases(gen):
    cases = []
    for _ in range(4):
        rows, cols = _int(gen, 2, 12), _int(gen, 2, 12)
        cases.append((torch.randn(rows, cols, generator=gen, dtype=torch.float64), _int(gen, 1, min(rows, cols))))
    return cases


register(Exercise(id="ch04.rank_cut", summary="Best low-rank approximation of a weight matrix by SVD.",
                  reference=rank_cut, cases=_rank_cases))


# --- sparse attention: the top-k mask ----------------------------------------------------------------------


def topk_causal_mask(scores, k):
    """(T, T) boolean mask: query t may attend to key s if s <= t and s is among the k highest `scores[t]`
    of the keys s <= t (all of them when t < k). scores (T, T), any values above the diagonal."""
    T = scores.shape[0]
    visible = torch.ones(T, T, dtype=torch.bool).tril()
    ranked = scores.masked_fill(~visible, float("-inf")).topk(min(k, T), dim=-1).indices
    return torch.zeros(T, T, dtype=torch.bool).scatter(-1, ranked, True) & visible


def _topk_cases(gen):
    cases = []
    for _ in range(5):
        T = _int(gen, 1, 12)
        cases.append((torch.randn(T, T, generator=gen), _int(gen, 1, 14)))
    return cases


register(Exercise(id="ch04.topk_causal_mask",
                  summary="The attention mask of sparse attention: causal and top-k by index score.",
                  reference=topk_causal_mask, cases=_topk_cases))
