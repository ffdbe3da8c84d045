"""Qwen3-Next-80B-A3B in the zoo: its count equals transformers' (meta device) for the same config.json, is within
the published total once the multi-token-prediction layer is accounted for, works tiny, and its cache counts the
linear layers' fixed state."""

import pytest
import torch

import llmfs
from llmfs import count_parameters, kv_cache_bytes, zoo

transformers = pytest.importorskip("transformers")
pytest.importorskip("transformers.models.qwen3_next")


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
    model = llmfs.Transformer(config).eval()
    idx = torch.randint(0, config.vocab_size, (1, 12))
    cache = model.new_cache(1)
    with torch.no_grad():
        full = model(idx)
        stepped = torch.cat([model(idx[:, t:t + 1], cache=cache) for t in range(12)], dim=1)
    torch.testing.assert_close(stepped, full, atol=1e-5, rtol=1e-4)
