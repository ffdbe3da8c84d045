"""DeepSeek-V3's multi-head latent attention against transformers: tiny random models (no downloads), with and
without a compressed query, value heads narrower than key heads, DeepSeek's YaRN; same logits, same tokens."""

import pytest
import torch
from parity import assert_cached_decoding_matches, assert_forward_matches, assert_greedy_generate_matches

from llmfs import MLA, MLP, count_parameters, kv_cache_bytes
from llmfs.hf import config_from_transformers, from_transformers

transformers = pytest.importorskip("transformers")
VOCAB = 300
YARN = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 32,
        "beta_fast": 32.0, "beta_slow": 1.0, "mscale": 0.707, "mscale_all_dim": 1.0}
VARIANTS = {
    "q-lora": dict(q_lora_rank=48),
    "no-q-lora": dict(q_lora_rank=None),
    "yarn-mscale": dict(q_lora_rank=48, rope_parameters=YARN),
    # one dense layer, then MoE layers: 8 routed experts in 4 groups (2 may be chosen), top-3, 1 shared expert
    "moe": dict(q_lora_rank=48, first_k_dense_replace=1, n_routed_experts=8, n_group=4, topk_group=2,
                num_experts_per_tok=3, moe_intermediate_size=32, n_shared_experts=1, routed_scaling_factor=2.5),
}


def tiny_hf_deepseek_v3(q_lora_rank=48, rope_parameters=None, n_layers=3, first_k_dense_replace=None, **overrides):
    """A tiny random DeepseekV3ForCausalLM (all layers dense unless first_k_dense_replace says otherwise), eager
    attention, random norm weights and router selection biases.
    No EOS id: transformers would suppress it under min_new_tokens while greedy llmfs.generate may pick it."""
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

    torch.manual_seed(0)
    config = DeepseekV3Config(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=n_layers,
        first_k_dense_replace=n_layers if first_k_dense_replace is None else first_k_dense_replace,
        num_attention_heads=4, num_key_value_heads=4, kv_lora_rank=32,
        q_lora_rank=q_lora_rank, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=12,
        max_position_embeddings=128, rms_norm_eps=1e-6, num_mtp_layers=0,
        rope_parameters=rope_parameters or {"rope_type": "default", "rope_theta": 10000.0},
        attn_implementation="eager", bos_token_id=0, eos_token_id=None, pad_token_id=1, **overrides)
    model = DeepseekV3ForCausalLM(config)
    with torch.no_grad():  # ones would hide a norm loaded into the wrong place
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.5 * torch.randn(p.shape))
            if "e_score_correction_bias" in name:  # zeros would hide a bias that is not used for selection
                p.copy_(0.1 * torch.randn(p.shape))
    return model.eval()


@pytest.mark.parametrize("variant", VARIANTS)
def test_full_forward_logits_match(variant):
    assert_forward_matches(tiny_hf_deepseek_v3(**VARIANTS[variant]))


@pytest.mark.parametrize("variant", VARIANTS)
def test_prefill_and_cached_decoding_match(variant):
    assert_cached_decoding_matches(tiny_hf_deepseek_v3(**VARIANTS[variant]))


@pytest.mark.parametrize("variant", VARIANTS)
def test_greedy_generate_matches_transformers(variant):
    assert_greedy_generate_matches(tiny_hf_deepseek_v3(**VARIANTS[variant]))


def test_config_maps_the_latent_attention():
    config = config_from_transformers(tiny_hf_deepseek_v3(rope_parameters=YARN).config)
    assert config.layers[0].attention == MLA(4, 32, 48, 16, 8, 12)
    scaling = config.layers[0].positions.scaling
    assert (scaling.kind, scaling.factor, scaling.mscale, scaling.mscale_all_dim) == ("yarn", 4.0, 0.707, 1.0)


def test_converted_model_caches_latents_only():
    hf = tiny_hf_deepseek_v3()
    ours = from_transformers(hf)
    cache = ours.new_cache(batch_size=2)
    with torch.no_grad():
        ours(torch.randint(0, VOCAB, (2, 10)), cache=cache)
    assert cache.nbytes == kv_cache_bytes(ours.config, 10, batch_size=2, dtype=torch.float32)
    assert cache.nbytes == 3 * 2 * 10 * (32 + 8) * 4  # layers x batch x tokens x (latent + rotary key) x fp32
    assert count_parameters(ours.config).total == sum(p.numel() for p in hf.parameters())


def test_moe_layers_become_llmfs_moe_with_the_deepseek_router():
    config = config_from_transformers(tiny_hf_deepseek_v3(**VARIANTS["moe"]).config)
    assert config.layers[0].ffn == MLP(96) and config.layers[1] == config.layers[2]
    moe = config.layers[1].ffn
    assert (moe.n_experts, moe.top_k, moe.n_shared, moe.router, moe.n_group, moe.topk_group, moe.routed_scaling) == \
        (8, 3, 1, "sigmoid", 4, 2, 2.5)


def test_deepseek_v3_parameters_equal_transformers_with_all_layers_dense():
    """The full DeepSeek-V3 config with every layer dense: llmfs's count equals transformers' exactly."""
    from transformers import DeepseekV3Config

    hf_config = DeepseekV3Config(first_k_dense_replace=61, num_mtp_layers=0)
    with torch.device("meta"):
        reference = transformers.AutoModelForCausalLM.from_config(hf_config)
    config = config_from_transformers(hf_config)
    assert count_parameters(config).total == sum(p.numel() for p in reference.parameters())
    assert kv_cache_bytes(config, 1) == 61 * (512 + 64) * 2  # 68.6 KiB per token in bf16


def tiny_hf_deepseek_v32(index_topk=6):
    """A tiny random DeepseekV32ForCausalLM (MLA + lightning indexer), all layers dense, eager attention."""
    from transformers import DeepseekV32Config, DeepseekV32ForCausalLM

    torch.manual_seed(0)
    config = DeepseekV32Config(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2, first_k_dense_replace=2,
        num_attention_heads=4, num_key_value_heads=4, kv_lora_rank=32, q_lora_rank=48, qk_nope_head_dim=16,
        qk_rope_head_dim=8, v_head_dim=12, index_n_heads=8, index_head_dim=16, index_topk=index_topk,
        max_position_embeddings=128, rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        attn_implementation="eager", bos_token_id=0, eos_token_id=None, pad_token_id=1)
    model = DeepseekV32ForCausalLM(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.5 * torch.randn(p.shape))
    return model.eval()


def test_sparse_attention_forward_matches_deepseek_v32():
    assert_forward_matches(tiny_hf_deepseek_v32())


def test_sparse_attention_cached_decoding_matches_deepseek_v32():
    assert_cached_decoding_matches(tiny_hf_deepseek_v32())


def test_sparse_attention_greedy_generate_matches_deepseek_v32():
    assert_greedy_generate_matches(tiny_hf_deepseek_v32())
