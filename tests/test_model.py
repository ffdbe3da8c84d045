"""The Transformer: shapes for every zoo architecture, causality, the cache, and bad input."""

import pytest
import torch

from llmfs import zoo
from llmfs.cache import KVCache
from llmfs.config import LayerSpec, ModelConfig
from llmfs.model import Transformer
from llmfs.residual import PostNorm, PreNorm


@pytest.mark.parametrize("name", zoo.names())
def test_every_zoo_architecture_returns_logits(name):
    config = zoo.tiny(name)
    model = Transformer(config)
    idx = torch.randint(0, config.vocab_size, (2, 9))
    assert model(idx).shape == (2, 9, config.vocab_size)


def test_future_tokens_do_not_change_past_logits():
    torch.manual_seed(0)
    model = Transformer(zoo.tiny("llama3-8b")).eval()
    idx = torch.randint(0, 512, (1, 10))
    changed = idx.clone()
    changed[0, 7:] = (changed[0, 7:] + 1) % 512
    torch.testing.assert_close(model(idx)[:, :7], model(changed)[:, :7])


@pytest.mark.parametrize("name", ["gpt2-124m", "llama3.2-1b", "qwen3-0.6b"])
def test_prefill_then_decode_equals_full_forward(name):
    torch.manual_seed(0)
    model = Transformer(zoo.tiny(name)).eval()
    idx = torch.randint(0, 512, (2, 12))
    cache = model.new_cache(batch_size=2)
    pieces = [model(idx[:, :8], cache=cache)] + [model(idx[:, t:t + 1], cache=cache) for t in range(8, 12)]
    torch.testing.assert_close(torch.cat(pieces, dim=1), model(idx), atol=1e-5, rtol=1e-5)
    assert cache.length == 12


def test_tied_embeddings_share_one_tensor():
    tied = Transformer(zoo.tiny("gpt2-124m"))
    untied = Transformer(zoo.tiny("llama3-8b"))
    assert tied.lm_head.weight is tied.token_embedding.weight
    assert untied.lm_head.weight is not untied.token_embedding.weight


def test_per_layer_specs_build_per_layer_blocks():
    layers = (LayerSpec(norm_placement="pre", positions="rope"), LayerSpec(norm_placement="post", positions="none"))
    config = ModelConfig(d_model=32, n_heads=4, n_layers=2, layers=layers, vocab_size=50)
    model = Transformer(config)
    assert isinstance(model.blocks[0].attention, PreNorm) and isinstance(model.blocks[1].attention, PostNorm)
    assert type(model.blocks[1].attention.sublayer.positions).__name__ == "NoPositions"
    assert model(torch.zeros(1, 4, dtype=torch.long)).shape == (1, 4, 50)


def test_sequence_longer_than_context_is_an_error():
    model = Transformer(zoo.tiny("gpt2-124m", context_length=8))
    with pytest.raises(ValueError, match="sequence of 9 tokens .* exceeds context_length=8"):
        model(torch.zeros(1, 9, dtype=torch.long))


@pytest.mark.parametrize("bad", [512, -1])
def test_token_ids_out_of_range_are_an_error(bad):
    model = Transformer(zoo.tiny("gpt2-124m"))
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, vocab_size=512\)"):
        model(torch.tensor([[1, 2, bad]]))


def test_wrong_input_shape_or_dtype_is_an_error():
    model = Transformer(zoo.tiny("gpt2-124m"))
    with pytest.raises(ValueError, match="integer token ids of shape"):
        model(torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="integer token ids of shape"):
        model(torch.zeros(1, 4))
    with pytest.raises(TypeError, match="needs a llmfs.ModelConfig"):
        Transformer({"d_model": 64})


def test_cache_reused_with_another_batch_size_is_an_error():
    model = Transformer(zoo.tiny("llama3-8b"))
    cache = model.new_cache(batch_size=2)
    model(torch.zeros(2, 3, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="made for batch_size=2 but got a batch of 1"):
        model(torch.zeros(1, 1, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        model.new_cache(0)


def test_cache_from_another_model_is_an_error():
    llama, qwen = Transformer(zoo.tiny("llama3-8b")), Transformer(zoo.tiny("qwen3-0.6b"))
    cache = qwen.new_cache(batch_size=1)
    with pytest.raises(ValueError, match="made by a model with another config"):
        llama(torch.zeros(1, 3, dtype=torch.long), cache=cache)
    assert cache.length == 0 and cache.nbytes == 0  # refused before anything was written
    assert isinstance(cache, KVCache)


def test_count_parameters_names_itself_on_a_wrong_argument():
    import llmfs
    with pytest.raises(TypeError, match="count_parameters needs a llmfs.ModelConfig"):
        llmfs.count_parameters("llama3-8b")
