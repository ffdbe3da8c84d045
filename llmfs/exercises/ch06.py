"""Exercises of chapter 6 (Feed-forward networks and mixture of experts): reference solutions and random inputs."""

import math

import torch

from llmfs.exercises import Exercise, register


def _int(gen, low, high):
    """A random integer in [low, high] drawn from the seeded generator."""
    return int(torch.randint(low, high + 1, (1,), generator=gen))


# --- a softmax top-k router ----------------------------------------------------------------------------


def topk_router(logits, k, renormalize):
    """Router logits (N, E) -> (weights (N, k), experts (N, k)): softmax over all experts, keep the k largest
    probabilities (largest first), and divide them by their sum when `renormalize` (Mixtral) or not (OLMoE)."""
    probs = logits.softmax(-1)
    weights, experts = probs.topk(k, dim=-1)
    if renormalize:
        weights = weights / weights.sum(-1, keepdim=True)
    return weights, experts


def _router_cases(gen):
    cases = []
    for renormalize in (True, False):
        for _ in range(3):
            E = _int(gen, 2, 16)
            cases.append((torch.randn(_int(gen, 1, 20), E, generator=gen), _int(gen, 1, E), renormalize))
    return cases


register(Exercise(id="ch06.topk_router", summary="Softmax top-k routing, with and without renormalising.",
                  reference=topk_router, cases=_router_cases))


# --- DeepSeek V3's auxiliary-loss-free bias update -------------------------------------------------------


def bias_update(bias, load, rate):
    """One step of auxiliary-loss-free balancing: each expert's selection bias moves by `rate` towards balance,
    up when its load (tokens routed to it, (E,)) is below the mean load, down when above, unchanged when equal."""
    return bias + rate * torch.sign(load.mean() - load)


def _bias_cases(gen):
    cases = [(torch.zeros(4), torch.tensor([10.0, 10.0, 10.0, 10.0]), 0.01)]
    for _ in range(4):
        E = _int(gen, 2, 32)
        cases.append((0.1 * torch.randn(E, generator=gen), torch.randint(0, 50, (E,), generator=gen).float(),
                      10 ** -_int(gen, 1, 4)))
    return cases


register(Exercise(id="ch06.bias_update", summary="DeepSeek V3's auxiliary-loss-free selection-bias update.",
                  reference=bias_update, cases=_bias_cases))


# --- counting active parameters from first principles ----------------------------------------------------


def moe_ffn_parameters(d_model, n_experts, top_k, d_expert, n_shared):
    """(total, active) parameters of one MoE layer of SwiGLU experts (gate, up, down; no biases) with
    n_shared always-on experts of width d_expert and a router (a d_model x n_experts matrix, always active)."""
    expert = 3 * d_model * d_expert
    router = d_model * n_experts
    return (n_experts + n_shared) * expert + router, (top_k + n_shared) * expert + router


def _count_cases(gen):
    cases = [(2048, 128, 8, 768, 0), (7168, 256, 8, 2048, 1)]  # Qwen3-30B-A3B, DeepSeek V3
    for _ in range(4):
        E = _int(gen, 1, 64)
        cases.append((_int(gen, 8, 4096), E, _int(gen, 1, E), _int(gen, 8, 4096), _int(gen, 0, 2)))
    return cases


register(Exercise(id="ch06.moe_ffn_parameters", summary="Total and active parameters of one MoE layer.",
                  reference=moe_ffn_parameters, cases=_count_cases))


# --- the 2/3 rule ----------------------------------------------------------------------------------------


def glu_width(d_model, multiple_of):
    """Hidden width of a GLU with as many parameters as a 4 x d_model GELU MLP (no biases): 2/3 of 4 x d_model,
    rounded up to a multiple of `multiple_of` (Llama's rule)."""
    width = int(2 * 4 * d_model / 3)
    return multiple_of * math.ceil(width / multiple_of)


def _width_cases(gen):
    cases = [(4096, 256), (768, 1), (512, 64)]
    for _ in range(4):
        cases.append((_int(gen, 1, 8192), 2 ** _int(gen, 0, 8)))
    return cases


register(Exercise(id="ch06.glu_width", summary="The GLU width that keeps an MLP's parameter count (2/3 rule).",
                  reference=glu_width, cases=_width_cases))


# --- expert-choice routing --------------------------------------------------------------------------------


def expert_choice(scores, capacity):
    """Expert-choice routing (Zhou et al., 2022): each expert picks the `capacity` tokens that score highest
    for it. Scores (N, E) -> a boolean mask (N, E), True where token n is processed by expert e."""
    chosen = scores.topk(capacity, dim=0).indices  # (capacity, E): each expert's tokens
    return torch.zeros_like(scores, dtype=torch.bool).scatter_(0, chosen, True)


def _choice_cases(gen):
    cases = []
    for _ in range(5):
        N = _int(gen, 2, 40)
        cases.append((torch.randn(N, _int(gen, 1, 8), generator=gen), _int(gen, 1, N)))
    return cases


register(Exercise(id="ch06.expert_choice", summary="Expert-choice routing: experts pick their top tokens.",
                  reference=expert_choice, cases=_choice_cases))
