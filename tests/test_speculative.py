"""Speculative decoding: greedy equals the target's greedy; samples are distributed as the target's; bad input."""

import math

import pytest
import torch

import llmfs
from llmfs import speculative
from llmfs.cache import KVLayerCache

_exact_rule = speculative.accept_or_correct


def _pair(vocab=8, sharpen=4.0, seed=0):
    """A tiny target and a different tiny draft; heads scaled so their distributions are peaked and differ."""
    torch.manual_seed(seed)
    config = llmfs.zoo.tiny("llama3-8b", vocab_size=vocab, context_length=64)
    target, draft = llmfs.Transformer(config), llmfs.Transformer(config.replace(n_layers=2))
    with torch.no_grad():
        for model, scale in ((target, sharpen), (draft, sharpen * 0.7)):
            model.lm_head.weight.mul_(scale / model.lm_head.weight.std() / 8)
    return target, draft


@pytest.mark.parametrize("k", [1, 3, 5])
def test_greedy_matches_target_generate(k):
    target, draft = _pair(vocab=16, sharpen=1.0, seed=k)
    idx = torch.tensor([[1, 2, 3, 4]])
    expected = llmfs.generate(target, idx, 30)
    got, stats = llmfs.speculative_generate(target, draft, idx, 30, k=k, return_stats=True)
    assert torch.equal(got, expected)
    # the target as its own draft accepts everything: k + 1 tokens per target pass
    same, same_stats = llmfs.speculative_generate(target, target, idx, 30, k=k, return_stats=True)
    assert torch.equal(same, expected) and same_stats.acceptance_rate == 1.0
    assert stats.rounds >= same_stats.rounds == math.ceil(30 / (k + 1)) or k >= 30


def test_restores_train_mode():
    target, draft = _pair()
    target.train()
    draft.eval()
    llmfs.speculative_generate(target, draft, torch.tensor([[1]]), 3, k=2)
    assert target.training and not draft.training


def _chi_square_two_tokens(target, draft, draws, seed):
    """Chi-square of the first two sampled tokens against the target's exact joint distribution."""
    vocab = target.config.vocab_size
    prompt = torch.tensor([[1, 2]])
    with torch.no_grad():
        p1 = torch.softmax(target(prompt)[0, -1], -1)  # (vocab,)
        seconds = torch.cat((prompt.expand(vocab, 2), torch.arange(vocab)[:, None]), dim=1)
        p2 = torch.softmax(target(seconds)[:, -1], -1)  # (vocab, vocab)
    exact = (p1[:, None] * p2).flatten().double()  # (vocab * vocab,)
    generator = torch.Generator().manual_seed(seed)
    counts = torch.zeros(vocab * vocab, dtype=torch.float64)
    for _ in range(draws):
        out = llmfs.speculative_generate(target, draft, prompt, 2, k=2, temperature=1.0, generator=generator)
        counts[out[0, 2] * vocab + out[0, 3]] += 1
    expected = exact * draws
    return float(((counts - expected) ** 2 / expected).sum()), vocab * vocab - 1


def _wrong_rule(p, q, drafted, generator=None):
    """A plausible mistake: on rejection sample from the target p, not from the residual max(0, p - q)."""
    n, _ = _exact_rule(p, q, drafted, generator)
    row = p[n] if n < drafted.shape[0] else p[-1]
    return n, torch.multinomial(row, 1, generator=generator)


def test_samples_follow_target_distribution(monkeypatch):
    # 3 x 3 = 9 joint outcomes of the first two tokens, 8 degrees of freedom; 99.9% quantile ~ 26.1
    target, draft = _pair(vocab=3, sharpen=6.0)
    threshold = 26.1
    chi2, dof = _chi_square_two_tokens(target, draft, draws=800, seed=0)
    print(f"exact rule: chi2 = {chi2:.1f} on {dof} dof")
    assert chi2 < threshold
    monkeypatch.setattr(speculative, "accept_or_correct", _wrong_rule)
    wrong, _ = _chi_square_two_tokens(target, draft, draws=800, seed=0)
    print(f"wrong rule: chi2 = {wrong:.1f} on {dof} dof")
    assert wrong > threshold  # the test can fail: a biased rule is caught


def test_cache_truncate_rolls_back_in_place():
    cache = KVLayerCache(1)
    k = torch.arange(10.0).view(1, 1, 10, 1)
    cache.update(k, k)
    cache.truncate(4)
    assert cache.length == 4 and cache.tensors[0].shape[2] == 4
    cache.update(k[:, :, :2] + 100, k[:, :, :2] + 100)
    assert cache.tensors[0].flatten().tolist() == [0, 1, 2, 3, 100, 101]
    with pytest.raises(ValueError, match="length"):
        cache.truncate(7)


def test_cache_that_cannot_roll_back_is_refused():
    config = llmfs.zoo.tiny("gemma3-270m", vocab_size=8, context_length=64)  # sliding window: a ring buffer
    model = llmfs.Transformer(config)
    if model.new_cache(1).can_truncate:
        pytest.skip("this zoo entry's tiny cache can roll back")
    with pytest.raises(ValueError, match="cannot roll back"):
        llmfs.speculative_generate(model, model, torch.tensor([[1]]), 3, k=2)


@pytest.mark.parametrize("kwargs, field", [
    ({"k": 0}, "k "), ({"k": 2.5}, "k "), ({"k": True}, "k "),
    ({"temperature": float("nan")}, "temperature"), ({"temperature": -1.0}, "temperature"),
    ({"max_new_tokens": -1}, "max_new_tokens"), ({"max_new_tokens": 100}, "context_length"),
])
def test_bad_arguments_name_the_field(kwargs, field):
    target, draft = _pair()
    args = {"max_new_tokens": 3, "k": 2, **kwargs}
    with pytest.raises(ValueError, match=field):
        llmfs.speculative_generate(target, draft, torch.tensor([[1]]), **args)


def test_mismatched_models_are_refused():
    target, _ = _pair(vocab=8)
    other_vocab = llmfs.Transformer(target.config.replace(vocab_size=9))
    with pytest.raises(ValueError, match="vocab_size"):
        llmfs.speculative_generate(target, other_vocab, torch.tensor([[1]]), 3, k=2)
    other_context = llmfs.Transformer(target.config.replace(context_length=32))
    with pytest.raises(ValueError, match="context_length"):
        llmfs.speculative_generate(target, other_context, torch.tensor([[1]]), 3, k=2)
    with pytest.raises(ValueError, match="idx"):
        llmfs.speculative_generate(target, target, torch.tensor([[1], [2]]), 3, k=2)


def test_expected_tokens_per_round():
    assert speculative.expected_tokens_per_round(0.0, 4) == 1.0
    assert speculative.expected_tokens_per_round(1.0, 4) == 5.0
    assert abs(speculative.expected_tokens_per_round(0.5, 2) - 1.75) < 1e-12
