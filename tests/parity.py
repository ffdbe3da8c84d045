"""The three parity checks every transformers family gets: full forward, cached decoding, greedy generation.

Each takes a tiny random transformers model in eval mode, converts it with `llmfs.hf.from_transformers`,
and compares on random token ids (fp32, max abs diff <= 1e-5 for logits, equal tokens for generation).
"""

import torch

from llmfs.generate import generate
from llmfs.hf import from_transformers

TOLERANCE = 1e-5


def random_ids(vocab_size: int, length: int, seed: int, low: int = 0) -> torch.Tensor:
    return torch.randint(low, vocab_size, (2, length), generator=torch.Generator().manual_seed(seed))


def assert_forward_matches(hf, seq_len: int = 40) -> None:
    ours = from_transformers(hf)
    idx = random_ids(hf.config.vocab_size, seq_len, seed=1)
    with torch.no_grad():
        diff = (hf(idx).logits - ours(idx)).abs().max().item()
    assert diff <= TOLERANCE, f"full forward: max abs diff {diff:.2e}"


def assert_cached_decoding_matches(hf, prefill: int = 16, total: int = 24) -> None:
    """Prefill `prefill` tokens into the cache, then decode one token at a time up to `total`."""
    ours = from_transformers(hf)
    idx = random_ids(hf.config.vocab_size, total, seed=2)
    cache = ours.new_cache(batch_size=2)
    with torch.no_grad():
        expected = hf(idx).logits
        diff = (ours(idx[:, :prefill], cache=cache) - expected[:, :prefill]).abs().max().item()
        assert diff <= TOLERANCE, f"prefill: max abs diff {diff:.2e}"
        for t in range(prefill, total):
            diff = (ours(idx[:, t:t + 1], cache=cache) - expected[:, t:t + 1]).abs().max().item()
            assert diff <= TOLERANCE, f"decode step at position {t}: max abs diff {diff:.2e}"


def assert_greedy_generate_matches(hf, new_tokens: int = 20, pad_token_id: int = 1) -> None:
    """Greedy llmfs.generate gives transformers' greedy tokens (prompt ids avoid the special ids 0 and 1)."""
    ours = from_transformers(hf)
    idx = random_ids(hf.config.vocab_size, 6, seed=3, low=2)
    expected = hf.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=new_tokens, do_sample=False,
                           min_new_tokens=new_tokens, pad_token_id=pad_token_id)
    assert torch.equal(generate(ours, idx, max_new_tokens=new_tokens), expected)
