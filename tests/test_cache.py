"""The preallocated KV cache against the torch.cat one: same tensors, in place, exact byte counts."""

import pytest
import torch

from llmfs import KVCache, Transformer, generate, kv_cache_bytes, zoo
from llmfs.cache import ConcatKVLayerCache, KVLayerCache


def _steps(cache, shapes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    out = None
    for T in shapes:
        k, v = (torch.randn(2, 3, T, 4, generator=gen) for _ in range(2))
        out = cache.update(k, v)
    return out


@pytest.mark.parametrize("reserve", [0, 5, 40])
def test_preallocated_cache_holds_what_concatenation_holds(reserve):
    static, concat = KVLayerCache(2), ConcatKVLayerCache(2)
    static.reserve(reserve)
    shapes = [7, 1, 1, 3, 1, 9, 1]  # prefill, decode steps, chunks: the buffers grow past a small reservation
    for got, want in zip(_steps(static, shapes), _steps(concat, shapes)):
        assert torch.equal(got, want)
    assert static.length == concat.length == sum(shapes)
    assert static.nbytes == concat.nbytes == 2 * 2 * 3 * sum(shapes) * 4 * 4
    assert static.allocated_nbytes >= static.nbytes and static.capacity >= sum(shapes)


def test_reserved_buffers_are_written_in_place():
    cache = KVLayerCache(2)
    cache.reserve(16)
    _steps(cache, [4])
    pointers = [b.data_ptr() for b in cache.buffers]
    _steps(cache, [1] * 12)
    assert [b.data_ptr() for b in cache.buffers] == pointers  # no new allocation, no copy of the past
    assert cache.allocated_nbytes == 2 * 2 * 3 * 16 * 4 * 4


def test_model_cache_counts_filled_tokens_and_reports_its_allocation():
    config = zoo.tiny("llama3-8b", context_length=64)
    model = Transformer(config).eval()
    cache = model.new_cache(batch_size=2)
    cache.reserve(50)
    with torch.no_grad():
        model(torch.randint(0, config.vocab_size, (2, 11)), cache=cache)
    assert cache.nbytes == kv_cache_bytes(config, 11, batch_size=2, dtype=torch.float32)
    assert cache.allocated_nbytes == kv_cache_bytes(config, 50, batch_size=2, dtype=torch.float32)
    with pytest.raises(ValueError, match="n_tokens"):
        cache.reserve(-1)


def test_generation_with_either_cache_gives_the_same_tokens():
    config = zoo.tiny("llama3-8b", context_length=64)
    model = Transformer(config).eval()
    prompt = torch.randint(0, config.vocab_size, (2, 5))
    with torch.no_grad():
        concat = KVCache([ConcatKVLayerCache(2) for _ in model.blocks], config)
        logits = model(prompt, cache=concat)[:, -1]
        tokens = [logits.argmax(-1, keepdim=True)]
        for _ in range(9):
            tokens.append(model(tokens[-1], cache=concat)[:, -1].argmax(-1, keepdim=True))
    assert torch.equal(generate(model, prompt, 10)[:, 5:], torch.cat(tokens, dim=1))


def test_rope_table_matches_the_angles_and_follows_changes():
    from llmfs.positions import Rope, RotaryPositions

    rope = RotaryPositions(Rope(), 16)
    for mode in (True, False):
        rope.train(mode)
        for positions in (torch.arange(5), torch.arange(100, 101), torch.arange(3, 200), torch.tensor([7, 2])):
            cos, sin = rope.cos_sin(positions)
            table_cos, table_signed_sin = rope.rotation_tables(positions, torch.float32)
            assert torch.equal(table_cos, torch.cat((cos, cos), dim=-1))
            assert torch.equal(table_signed_sin, torch.cat((-sin, sin), dim=-1))
    rope.inv_freq.mul_(0.5)  # changed in place: the table must be rebuilt
    cos, _ = rope.cos_sin(torch.arange(7))
    assert torch.equal(rope.rotation_tables(torch.arange(7), torch.float32)[0][:, :8], cos)
