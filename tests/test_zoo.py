"""The zoo: published configs, parameter counts against transformers and the published totals, cache sizes."""

import pytest
import torch

from llmfs import zoo
from llmfs.counting import count_parameters, kv_cache_bytes
from llmfs.model import Transformer

transformers = pytest.importorskip("transformers")

REQUIRED = ["gpt2-124m", "gpt2-xl", "llama3-8b", "llama3.2-1b", "qwen3-0.6b", "qwen3-4b", "qwen3-32b"]


def hf_config(name):
    """The same architecture as a transformers config, written from the model cards independently of the zoo."""
    from transformers import GPT2Config, LlamaConfig, Qwen3Config

    qwen = dict(vocab_size=151936, head_dim=128, num_key_value_heads=8)
    llama = dict(vocab_size=128256, num_key_value_heads=8)
    return {
        "gpt2-124m": GPT2Config(),
        "gpt2-xl": GPT2Config(n_embd=1600, n_layer=48, n_head=25),
        "llama3-8b": LlamaConfig(**llama, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                                 num_attention_heads=32, tie_word_embeddings=False),
        "llama3.2-1b": LlamaConfig(**llama, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                                   num_attention_heads=32, tie_word_embeddings=True),
        "qwen3-0.6b": Qwen3Config(**qwen, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                                  num_attention_heads=16, tie_word_embeddings=True),
        "qwen3-4b": Qwen3Config(**qwen, hidden_size=2560, intermediate_size=9728, num_hidden_layers=36,
                                num_attention_heads=32, tie_word_embeddings=True),
        "qwen3-32b": Qwen3Config(**qwen, hidden_size=5120, intermediate_size=25600, num_hidden_layers=64,
                                 num_attention_heads=64, tie_word_embeddings=False),
    }[name]


def test_zoo_has_the_required_models():
    assert set(REQUIRED) <= set(zoo.names())
    assert all(name == name.lower() and " " not in name for name in zoo.names())


@pytest.mark.parametrize("name", REQUIRED)
def test_parameter_count_equals_transformers_and_published(name):
    with torch.device("meta"):
        reference = transformers.AutoModelForCausalLM.from_config(hf_config(name))
    count = count_parameters(zoo.get(name))
    assert count.total == sum(p.numel() for p in reference.parameters())
    assert count.active == count.total
    assert abs(count.total / zoo.PUBLISHED_PARAMETERS[name] - 1) < 0.01


def test_unknown_name_suggests_the_closest():
    with pytest.raises(KeyError, match="Did you mean 'llama3-8b'"):
        zoo.get("llama-3-8b")


def test_tiny_keeps_the_attention_kind():
    assert zoo.tiny("gpt2-124m").n_kv_heads == 4
    assert zoo.tiny("llama3-8b").n_kv_heads == 2
    assert zoo.tiny("qwen3-0.6b").qk_norm == "per_head"
    assert zoo.tiny("gpt2-124m", vocab_size=50257).vocab_size == 50257


def test_kv_cache_formula_worked_example():
    """32 K/V heads of dim 128, 128k tokens, fp16: 64 MiB per head (K and V), 2 GiB per layer (chapter 3)."""
    config = zoo.get("llama3-8b").replace(n_kv_heads=32, n_layers=1)
    assert config.n_kv_heads == 32
    assert kv_cache_bytes(config, 128 * 1024, dtype=torch.float16) == 2 * 2**30


@pytest.mark.parametrize("name", ["gpt2-124m", "llama3.2-1b", "qwen3-4b"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kv_cache_formula_equals_bytes_held_after_prefill(name, dtype):
    config = zoo.tiny(name)
    model = Transformer(config).to(dtype)
    cache = model.new_cache(batch_size=3)
    model(torch.randint(0, config.vocab_size, (3, 37)), cache=cache)
    assert cache.nbytes == kv_cache_bytes(config, 37, batch_size=3, dtype=dtype)


def test_kv_cache_bytes_rejects_bad_sizes():
    with pytest.raises(ValueError, match="seq_len must be an integer >= 0, got -1"):
        kv_cache_bytes(zoo.get("gpt2-124m"), -1)
