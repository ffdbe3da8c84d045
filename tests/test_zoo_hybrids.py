"""Qwen3-Next-80B-A3B in the zoo: its count equals transformers' (meta device) for the same config.json, is within
the published total once the multi-token-prediction layer is accounted for, works tiny, and its cache counts the
linear layers' fixed state."""

import pytest
import torch

import llmfs
from llmfs import count_parameters, kv_cache_bytes, zoo

transformers = pytest.importorskip("transformers")
pytest.importorskip("transformers.models.qwen3_next")


def assert_cached_decoding_equals_full_forward(config, T: int):
    """Token-by-token decoding through the cache gives the full forward's logits."""
    model = llmfs.Transformer(config).eval()
    idx = torch.randint(0, config.vocab_size, (1, T))
    cache = model.new_cache(1)
    with torch.no_grad():
        full = model(idx)
        stepped = torch.cat([model(idx[:, t:t + 1], cache=cache) for t in range(T)], dim=1)
    torch.testing.assert_close(stepped, full, atol=1e-5, rtol=1e-4)


def test_qwen3_next_count_equals_transformers_meta_count():
    from transformers import Qwen3NextConfig, Qwen3NextForCausalLM

    # Qwen/Qwen3-Next-80B-A3B-Instruct's config.json (fields that differ from transformers' defaults)
    hf = Qwen3NextConfig(intermediate_size=5120, max_position_embeddings=262144, num_experts=512, num_experts_per_tok=10,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e7, "partial_rotary_factor": 0.25})
    with torch.device("meta"):
        theirs = sum(p.numel() for p in Qwen3NextForCausalLM(hf).parameters())
    assert count_parameters(zoo.get("qwen3-next-80b-a3b")).total == theirs


def test_qwen3_next_count_is_near_the_published_one():
    count = count_parameters(zoo.get("qwen3-next-80b-a3b"))
    # 80B published counts the MTP layer (~1.5B) too: ours is at most 2.5% under, never over
    assert 0.975 * zoo.PUBLISHED_PARAMETERS["qwen3-next-80b-a3b"] <= count.total <= zoo.PUBLISHED_PARAMETERS[
        "qwen3-next-80b-a3b"]
    # "3B activated" leaves out the embeddings: ours with both embedding matrices is 3.9B, without 3.25B
    active_in_blocks = count.active - 2 * count.embedding
    assert abs(active_in_blocks - zoo.PUBLISHED_ACTIVE_PARAMETERS["qwen3-next-80b-a3b"]) <= 0.1 * 3e9


def test_qwen3_next_cache_holds_linear_state_plus_full_layers_keys_and_values():
    config = zoo.get("qwen3-next-80b-a3b")
    state = 36 * (32 * 128 * 128 + (2 * 16 * 128 + 32 * 128) * 3)  # 36 linear layers: state + conv's last 3 inputs
    per_token = 12 * 2 * 2 * 256  # 12 full layers, keys and values of 2 heads of 256
    for seq_len in (0, 1000, 4096):
        assert kv_cache_bytes(config, seq_len, dtype=torch.float32) == 4 * (state + per_token * seq_len)


def test_qwen3_next_tiny_runs_and_keeps_its_pattern():
    config = zoo.tiny("qwen3-next-80b-a3b")
    kinds = [type(spec.attention).__name__ for spec in config.layers]
    assert kinds == ["LinearAttention"] * 3 + ["Attention"]
    assert all(spec.ffn.shared_gate for spec in config.layers)
    assert_cached_decoding_equals_full_forward(config, 12)


KIMI_FULL = [i - 1 for i in (4, 8, 12, 16, 20, 24, 27)]


def test_kimi_linear_count_equals_transformers_meta_count_and_is_near_the_published_one():
    pytest.importorskip("transformers.models.kimi_linear")
    from transformers import KimiLinearConfig, KimiLinearForCausalLM

    # moonshotai/Kimi-Linear-48B-A3B-Instruct's config.json
    hf = KimiLinearConfig(vocab_size=163840, hidden_size=2304, num_hidden_layers=27, num_attention_heads=32,
                          num_key_value_heads=32, intermediate_size=9216, q_lora_rank=None, kv_lora_rank=512,
                          qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128, num_experts=256,
                          num_experts_per_tok=8, moe_intermediate_size=1024, num_shared_experts=1,
                          routed_scaling_factor=2.446, linear_num_heads=32, linear_head_dim=128,
                          linear_conv_kernel_dim=4, tie_word_embeddings=False,
                          layer_types=["full_attention" if i in KIMI_FULL else "linear_attention" for i in range(27)],
                          mlp_layer_types=["dense"] + ["sparse"] * 26)
    with torch.device("meta"):
        theirs = sum(p.numel() for p in KimiLinearForCausalLM(hf).parameters())
    count = count_parameters(zoo.get("kimi-linear-48b-a3b"))
    assert count.total == theirs
    published = zoo.PUBLISHED_PARAMETERS["kimi-linear-48b-a3b"]
    assert abs(count.total - published) <= 0.03 * published  # 49.1B counted vs "48B"
    active = count.active - 2 * count.embedding  # "3B activated" leaves out the embeddings: 2.73B here
    assert abs(active - zoo.PUBLISHED_ACTIVE_PARAMETERS["kimi-linear-48b-a3b"]) <= 0.1 * 3e9


def test_kimi_linear_cache_holds_kda_state_plus_mla_latents():
    config = zoo.get("kimi-linear-48b-a3b")
    state = 20 * (32 * 128 * 128 + 3 * 32 * 128 * 3)  # 20 KDA layers: state + the q, k, v convs' last 3 inputs
    per_token = 7 * (512 + 64)  # 7 MLA layers: latent + shared key part
    for seq_len in (0, 1000):
        assert kv_cache_bytes(config, seq_len, dtype=torch.float32) == 4 * (state + per_token * seq_len)


def test_kimi_linear_tiny_runs_with_its_layer_kinds():
    config = zoo.tiny("kimi-linear-48b-a3b")
    assert {type(spec.attention).__name__ for spec in config.layers} == {"LinearAttention", "MLA"}
    assert_cached_decoding_equals_full_forward(config, 6)
