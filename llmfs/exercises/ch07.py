"""Exercises of chapter 7 (Normalization: RMSNorm, placement, QK-norm): reference solutions and their random inputs."""

import torch
import torch.nn.functional as F

from llmfs.exercises import Exercise, register


def _features(gen, *shape):
    """Random features whose rows have different scales and offsets, so a missing mean or eps shows."""
    scale = torch.rand(*shape[:-1], 1, generator=gen) * 3 + 0.2
    offset = torch.randn(*shape[:-1], 1, generator=gen)
    return torch.randn(*shape, generator=gen) * scale + offset


# --- RMSNorm -------------------------------------------------------------------------------------------


def rms_norm(x, weight, eps):
    """x (..., D), weight (D,) -> x / sqrt(mean(x²) + eps) * weight over the last dimension."""
    return F.rms_norm(x, (x.shape[-1],), weight, eps=eps)


def _rms_cases(gen):
    return [
        (_features(gen, 5), torch.randn(5, generator=gen), 1e-6),
        (_features(gen, 2, 3, 8), torch.randn(8, generator=gen), 1e-5),
        (_features(gen, 4, 16) * 1e-3, torch.ones(16), 1e-2),  # tiny inputs: eps matters
    ]


register(
    Exercise(
        id="ch07.rms_norm",
        summary="RMSNorm from scratch: divide by the root mean square, scale by a learned weight; no mean, no bias.",
        reference=rms_norm,
        cases=_rms_cases,
    )
)


# --- LayerNorm -----------------------------------------------------------------------------------------


def layer_norm(x, weight, bias, eps):
    """x (..., D), weight (D,), bias (D,) -> (x - mean) / sqrt(var + eps) * weight + bias, biased variance."""
    return F.layer_norm(x, (x.shape[-1],), weight, bias, eps=eps)


def _layer_cases(gen):
    return [
        (_features(gen, 6), torch.randn(6, generator=gen), torch.randn(6, generator=gen), 1e-5),
        (_features(gen, 2, 4, 10), torch.randn(10, generator=gen), torch.randn(10, generator=gen), 1e-5),
        (_features(gen, 3, 2), torch.ones(2), torch.zeros(2), 1e-3),  # D = 2: biased vs unbiased variance differ a lot
    ]


register(
    Exercise(
        id="ch07.layer_norm",
        summary="LayerNorm from scratch: centre, divide by the (biased) standard deviation, scale and shift.",
        reference=layer_norm,
        cases=_layer_cases,
    )
)


# --- the four placements -------------------------------------------------------------------------------


def residual_placements(x, W, g_pre, g_post, eps):
    """x (..., D), W (D, D), norm weights g_pre, g_post (D,) -> dict of the four placements' outputs.

    The sublayer is f(x) = relu(x Wᵀ) and every norm is an RMSNorm with `eps`:
    "pre" x + f(n_pre(x)), "post" n_post(x + f(x)), "post_sublayer" x + n_post(f(x)),
    "sandwich" x + n_post(f(n_pre(x))).
    """
    def f(h):
        return torch.relu(h @ W.T)

    def n_pre(h):
        return rms_norm(h, g_pre, eps)

    def n_post(h):
        return rms_norm(h, g_post, eps)

    return {
        "pre": x + f(n_pre(x)),
        "post": n_post(x + f(x)),
        "post_sublayer": x + n_post(f(x)),
        "sandwich": x + n_post(f(n_pre(x))),
    }


def _placement_cases(gen):
    cases = []
    for shape in [(4,), (3, 6), (2, 5, 8)]:
        D = shape[-1]
        cases.append((_features(gen, *shape), torch.randn(D, D, generator=gen), torch.randn(D, generator=gen),
                      torch.randn(D, generator=gen), 1e-6))
    return cases


register(
    Exercise(
        id="ch07.residual_placements",
        summary="Pre-LN, Post-LN, OLMo 2's norm of the sublayer output and Gemma's sandwich, on one sublayer.",
        reference=residual_placements,
        cases=_placement_cases,
    )
)


# --- QK-norm per head ----------------------------------------------------------------------------------


def qk_norm_per_head(q, weight, n_heads, eps):
    """q (B, T, n_heads * head_dim), weight (head_dim,) -> RMSNorm over each head's features, same shape."""
    B, T, _ = q.shape
    heads = q.view(B, T, n_heads, -1)  # (B, T, n_heads, head_dim)
    return rms_norm(heads, weight, eps).view(B, T, -1)


def _qk_cases(gen):
    cases = []
    for B, T, H, hd in [(1, 1, 2, 4), (2, 3, 4, 8), (2, 5, 3, 6)]:
        scales = torch.rand(H, 1, generator=gen) * 10 + 0.1  # heads of very different sizes
        q = (torch.randn(B, T, H, hd, generator=gen) * scales).view(B, T, H * hd)
        cases.append((q, torch.randn(hd, generator=gen), H, 1e-6))
    return cases


register(
    Exercise(
        id="ch07.qk_norm_per_head",
        summary="Qwen3's QK-norm: RMSNorm over each head's slice of the query projection, one weight for all heads.",
        reference=qk_norm_per_head,
        cases=_qk_cases,
    )
)


# --- how the residual stream grows ---------------------------------------------------------------------


def stream_rms(x, Ws, placement, eps):
    """x (T, D), Ws (L, D, D), placement "pre" or "post_sublayer" -> (L + 1,) RMS of the residual stream.

    Each layer adds f(h) = h W_lᵀ through its placement with unit-weight RMSNorms; entry 0 is the RMS
    of x, entry l the RMS (over all T·D numbers) after layer l.
    """
    ones = torch.ones(x.shape[-1])
    rms = [x.pow(2).mean().sqrt()]
    for W in Ws:
        if placement == "pre":
            x = x + rms_norm(x, ones, eps) @ W.T
        else:
            x = x + rms_norm(x @ W.T, ones, eps)
        rms.append(x.pow(2).mean().sqrt())
    return torch.stack(rms)


def _stream_cases(gen):
    cases = []
    for T, D, L, placement in [(3, 8, 2, "pre"), (4, 16, 6, "post_sublayer"), (5, 16, 12, "pre")]:
        Ws = torch.randn(L, D, D, generator=gen) / D**0.5
        cases.append((torch.randn(T, D, generator=gen), Ws, placement, 1e-6))
    return cases


register(
    Exercise(
        id="ch07.stream_rms",
        summary="The residual stream's RMS layer by layer: Pre-LN lets it grow, OLMo 2 adds updates of RMS 1.",
        reference=stream_rms,
        cases=_stream_cases,
    )
)


# --- z-loss (PaLM) -------------------------------------------------------------------------------------


def z_loss(logits):
    """logits (..., V) -> mean over positions of logsumexp(logits)² (PaLM's auxiliary loss)."""
    return torch.logsumexp(logits.float(), dim=-1).pow(2).mean()


register(
    Exercise(
        id="ch07.z_loss",
        summary="PaLM's z-loss: the mean squared log of the softmax normalizer, log Z = logsumexp(logits).",
        reference=z_loss,
        cases=lambda gen: [
            (torch.randn(2, 5, 11, generator=gen) * 3,),
            (torch.randn(7, 4, generator=gen) + 40.0,),   # large logits: exp overflows unless written stably
            (torch.randn(1, 3, 2, 6, generator=gen),),
        ],
    )
)


# --- logit soft-capping (Gemma 2) ----------------------------------------------------------------------


def soft_cap(logits, cap):
    """cap * tanh(logits / cap): close to the identity for small logits, never beyond ±cap."""
    return cap * torch.tanh(logits / cap)


register(
    Exercise(
        id="ch07.soft_cap",
        summary="Gemma 2's soft-capping: squash logits smoothly into (-cap, cap) with cap * tanh(x / cap).",
        reference=soft_cap,
        cases=lambda gen: [
            (torch.randn(3, 8, generator=gen) * 100, 50.0),
            (torch.randn(2, 4, 4, generator=gen) * 0.1, 30.0),
            (torch.randn(5, generator=gen) * 1e4, 30.0),
        ],
    )
)
