"""Exercises of appendix A: faster decoding (speculative decoding, multi-token prediction)."""

import torch

from . import Exercise, register


def _distributions(gen, n, vocab):
    """n random probability vectors (n, vocab), some peaked, some flat."""
    temperature = torch.rand(n, 1, generator=gen) * 2 + 0.3
    return torch.softmax(torch.randn(n, vocab, generator=gen) / temperature, dim=-1)


def accept_token(p: torch.Tensor, q: torch.Tensor, x: int, u: float) -> bool:
    """Whether drafted token x (drawn from q) is accepted, given the uniform draw u: u < p(x) / q(x)."""
    return bool(u < min(1.0, float(p[x] / q[x])))


def _accept_cases(gen):
    cases = []
    for _ in range(12):
        p, q = _distributions(gen, 2, 6)
        x = int(torch.multinomial(q, 1, generator=gen))
        cases.append((p, q, x, float(torch.rand(1, generator=gen))))
    return cases


register(Exercise(
    id="appA.accept_token",
    summary="The acceptance test for one drafted token x ~ q, with the uniform draw u given.",
    reference=accept_token,
    cases=_accept_cases,
))


def residual(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The distribution a rejected position samples from: max(0, p - q), normalised to sum to one."""
    r = (p - q).clamp(min=0)
    return r / r.sum()


def _residual_cases(gen):
    return [tuple(_distributions(gen, 2, int(torch.randint(3, 10, (1,), generator=gen))).unbind(0))
            for _ in range(6)]


register(Exercise(
    id="appA.residual",
    summary="The residual distribution normalize(max(0, p - q)) sampled after a rejection.",
    reference=residual,
    cases=_residual_cases,
))


def acceptance_rate(p: torch.Tensor, q: torch.Tensor) -> float:
    """The probability that a token drafted from q is accepted by target p: sum over x of min(p(x), q(x))."""
    return float(torch.minimum(p, q).sum())


register(Exercise(
    id="appA.acceptance_rate",
    summary="The acceptance probability alpha of one drafted token, from p and q (no sampling).",
    reference=acceptance_rate,
    cases=_residual_cases,
))


def tokens_per_round(alpha: float, k: int) -> float:
    """Expected tokens one target pass emits with k drafts, each accepted with probability alpha (independently)."""
    return float(sum(alpha ** i for i in range(k + 1)))


def _alpha_k_cases(gen):
    cases = [(1.0, 3), (0.0, 4)]
    for _ in range(6):
        alpha = round(float(torch.rand(1, generator=gen)) * 0.98, 3)
        cases.append((alpha, int(torch.randint(1, 9, (1,), generator=gen))))
    return cases


register(Exercise(
    id="appA.tokens_per_round",
    summary="Expected tokens per target pass, from the acceptance rate alpha and the number of drafts k.",
    reference=tokens_per_round,
    cases=_alpha_k_cases,
))


def break_even_draft_cost(alpha: float, k: int) -> float:
    """The draft cost c (draft step / target step) at which speculation with k drafts is exactly as fast as
    plain decoding: E(alpha, k) / (k c + 1) = 1, so c = (E - 1) / k."""
    expected = sum(alpha ** i for i in range(k + 1))
    return float((expected - 1) / k)


register(Exercise(
    id="appA.break_even_draft_cost",
    summary="The draft cost above which speculative decoding is slower than plain decoding.",
    reference=break_even_draft_cost,
    cases=_alpha_k_cases,
))


def best_k(alpha: float, draft_cost: float, k_max: int) -> int:
    """The number of drafts k in 1..k_max with the highest expected speedup E(alpha, k) / (k c + 1)."""
    speedups = [sum(alpha ** i for i in range(k + 1)) / (k * draft_cost + 1) for k in range(1, k_max + 1)]
    return 1 + max(range(k_max), key=speedups.__getitem__)


def _best_k_cases(gen):
    cases = [(0.9, 0.05, 12), (0.6, 0.2, 8), (0.95, 0.01, 20)]
    for _ in range(5):
        alpha = round(0.5 + 0.49 * float(torch.rand(1, generator=gen)), 3)
        cost = round(0.01 + 0.2 * float(torch.rand(1, generator=gen)), 3)
        cases.append((alpha, cost, 16))
    return cases


register(Exercise(
    id="appA.best_k",
    summary="The number of drafted tokens per round that maximizes the expected speedup.",
    reference=best_k,
    cases=_best_k_cases,
))
