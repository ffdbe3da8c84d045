"""OLMo 2 against transformers: tiny random models (no downloads), same logits, same tokens, same parameter count."""

import pytest
import torch
from parity import assert_cached_decoding_matches, assert_forward_matches, assert_greedy_generate_matches

from llmfs import zoo
from llmfs.counting import count_parameters
from llmfs.hf import config_from_transformers, from_transformers
from llmfs.residual import PostSublayerNorm

transformers = pytest.importorskip("transformers")
VOCAB = 300
KV_HEADS = [4, 2]  # OLMo 2 7B uses MHA (4 of 4 heads here); GQA checks the key norm's width


def tiny_hf_olmo2(n_kv_heads: int):
    """A tiny random Olmo2ForCausalLM, eager attention, eval mode, with random norm weights (not all ones)."""
    from transformers import Olmo2Config, Olmo2ForCausalLM

    torch.manual_seed(0)
    config = Olmo2Config(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=n_kv_heads, max_position_embeddings=128,
                         rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
                         attn_implementation="eager", bos_token_id=0, eos_token_id=1, pad_token_id=1)
    model = Olmo2ForCausalLM(config)
    with torch.no_grad():  # ones would hide a norm loaded into the wrong place
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.5 * torch.randn(p.shape))
    return model.eval()


def hf_olmo2_7b_config():
    """OLMo-2-1124-7B as a transformers config, written from its model card independently of the zoo."""
    from transformers import Olmo2Config

    return Olmo2Config(vocab_size=100352, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
                       rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
                       tie_word_embeddings=False)


@pytest.mark.parametrize("n_kv_heads", KV_HEADS)
def test_full_forward_logits_match(n_kv_heads):
    assert_forward_matches(tiny_hf_olmo2(n_kv_heads))


@pytest.mark.parametrize("n_kv_heads", KV_HEADS)
def test_prefill_and_cached_decoding_match(n_kv_heads):
    assert_cached_decoding_matches(tiny_hf_olmo2(n_kv_heads))


@pytest.mark.parametrize("n_kv_heads", KV_HEADS)
def test_greedy_generate_matches_transformers(n_kv_heads):
    assert_greedy_generate_matches(tiny_hf_olmo2(n_kv_heads))


def test_config_from_transformers_maps_the_mechanisms():
    config = config_from_transformers(tiny_hf_olmo2(2).config)
    assert (config.norm, config.ffn, config.positions) == ("rmsnorm", "swiglu", "rope")
    assert (config.norm_placement, config.qk_norm, config.norm_eps, config.rope_base) == (
        "post_sublayer", "full", 1e-6, 500000.0)
    assert (config.n_heads, config.n_kv_heads, config.head_dim, config.tie_embeddings) == (4, 2, 16, False)


def test_converted_model_normalizes_sublayer_outputs_and_full_width_queries():
    ours = from_transformers(tiny_hf_olmo2(2))
    block = ours.blocks[0]
    assert isinstance(block.attention, PostSublayerNorm) and isinstance(block.ffn, PostSublayerNorm)
    assert block.attention.sublayer.q_norm.weight.shape == (4 * 16,)
    assert block.attention.sublayer.k_norm.weight.shape == (2 * 16,)


def test_published_config_is_the_zoo_config():
    assert config_from_transformers(hf_olmo2_7b_config()).replace(name="olmo2-7b") == zoo.get("olmo2-7b")


def test_parameter_count_equals_transformers_and_published():
    with torch.device("meta"):
        reference = transformers.AutoModelForCausalLM.from_config(hf_olmo2_7b_config())
    count = count_parameters(zoo.get("olmo2-7b"))
    assert count.total == sum(p.numel() for p in reference.parameters())
    assert abs(count.total / zoo.PUBLISHED_PARAMETERS["olmo2-7b"] - 1) < 0.01


def test_tiny_olmo2_keeps_its_mechanisms():
    config = zoo.tiny("olmo2-7b")
    assert config.n_kv_heads == config.n_heads  # MHA stays MHA
    assert (config.norm_placement, config.qk_norm, config.ffn, config.norm) == (
        "post_sublayer", "full", "swiglu", "rmsnorm")
    from llmfs.model import Transformer

    model = Transformer(config)
    assert model(torch.randint(0, config.vocab_size, (1, 5))).shape == (1, 5, config.vocab_size)
