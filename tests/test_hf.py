"""Parity with Hugging Face transformers: tiny random models (no downloads), same logits, same tokens."""

import pytest
import torch
from parity import assert_cached_decoding_matches, assert_forward_matches, assert_greedy_generate_matches

from llmfs.hf import ConversionError, config_from_transformers, from_transformers

transformers = pytest.importorskip("transformers")
VOCAB = 300


def tiny_hf_model(family: str):
    """A tiny, randomly initialised transformers model of `family`, eager attention, eval mode."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    common = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                  attn_implementation="eager", bos_token_id=0, eos_token_id=1, pad_token_id=1)
    llama3_rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 4.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max_position_embeddings": 32}
    model = {
        "gpt2": lambda: GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=128, n_embd=64, n_layer=3, n_head=4,
                                                   attn_implementation="eager", bos_token_id=0, eos_token_id=1)),
        "llama": lambda: LlamaForCausalLM(LlamaConfig(**common, tie_word_embeddings=False)),
        "llama3-scaled": lambda: LlamaForCausalLM(LlamaConfig(**common, rope_parameters=llama3_rope)),
        "qwen3": lambda: Qwen3ForCausalLM(Qwen3Config(**common, head_dim=32, tie_word_embeddings=True)),
    }[family]()
    return model.eval()


FAMILIES = ["gpt2", "llama", "llama3-scaled", "qwen3"]


@pytest.mark.parametrize("family", FAMILIES)
def test_full_forward_logits_match(family):
    assert_forward_matches(tiny_hf_model(family))


@pytest.mark.parametrize("family", FAMILIES)
def test_prefill_and_cached_decoding_match(family):
    assert_cached_decoding_matches(tiny_hf_model(family))


@pytest.mark.parametrize("family", FAMILIES)
def test_greedy_generate_matches_transformers(family):
    assert_greedy_generate_matches(tiny_hf_model(family))


def test_config_from_transformers_maps_the_mechanisms():
    config = config_from_transformers(tiny_hf_model("qwen3").config)
    assert (config.norm, config.ffn, config.positions, config.qk_norm) == ("rmsnorm", "swiglu", "rope", "per_head")
    assert (config.n_heads, config.n_kv_heads, config.head_dim) == (4, 2, 32)
    scaled = config_from_transformers(tiny_hf_model("llama3-scaled").config)
    assert scaled.rope_scaling.factor == 4.0 and scaled.rope_scaling.original_context_length == 32


def test_unsupported_family_is_named():
    from transformers import FalconConfig

    with pytest.raises(ConversionError, match="unsupported model family 'falcon'"):
        config_from_transformers(FalconConfig())


def test_unsupported_setting_is_named():
    from transformers import GPT2Config

    with pytest.raises(ConversionError, match="activation_function='relu' is not supported"):
        config_from_transformers(GPT2Config(activation_function="relu"))


def test_shape_mismatch_names_the_tensor():
    hf = tiny_hf_model("llama")
    with torch.no_grad():
        hf.model.layers[1].mlp.up_proj.weight = torch.nn.Parameter(torch.zeros(97, 64))
    with pytest.raises(ConversionError, match=r"blocks.1.ffn.sublayer.up.weight.*\(97, 64\)"):
        from_transformers(hf)
