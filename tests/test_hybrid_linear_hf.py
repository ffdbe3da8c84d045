"""Qwen3-Next (Gated DeltaNet + gated full attention) and Kimi Linear (KDA) against transformers' torch paths:
tiny random models with dense and mixture-of-experts layers (and MLA in Kimi Linear), sequences longer than one chunk (64), same logits (1e-5, fp32) and same greedy tokens."""

import pytest
import torch
from parity import assert_cached_decoding_matches, assert_forward_matches, assert_greedy_generate_matches

from llmfs.attention import Attention
from llmfs.hf import ConversionError, config_from_transformers
from llmfs.linear_attention import LinearAttention

transformers = pytest.importorskip("transformers")
pytest.importorskip("transformers.models.qwen3_next")
pytest.importorskip("transformers.models.kimi_linear")
VOCAB = 300


pytestmark = pytest.mark.usefixtures("one_thread")


def _randomize(model):
    """Random norms, decays and convolutions, so a weight loaded into the wrong place shows."""
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or "dt_bias" in name:
                p.copy_(0.5 * torch.randn(p.shape) + (1 if "o_norm" in name or "linear_attn.norm" in name else 0))
    return model.eval()


def tiny_hf_qwen3_next(**overrides):
    from transformers import Qwen3NextConfig, Qwen3NextForCausalLM

    torch.manual_seed(0)
    settings = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=4,
                    num_attention_heads=4, num_key_value_heads=2, head_dim=16, linear_num_key_heads=2,
                    linear_num_value_heads=4, linear_key_head_dim=16, linear_value_head_dim=8,
                    linear_conv_kernel_dim=4, num_experts=0, max_position_embeddings=256, rms_norm_eps=1e-6,
                    rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25},
                    attn_implementation="eager", bos_token_id=0, eos_token_id=1, pad_token_id=1)
    return _randomize(Qwen3NextForCausalLM(Qwen3NextConfig(**{**settings, **overrides})))


def tiny_hf_kimi_linear(**overrides):
    from transformers import KimiLinearConfig, KimiLinearForCausalLM

    torch.manual_seed(0)
    settings = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                    num_attention_heads=4, linear_num_heads=4, linear_head_dim=16, linear_conv_kernel_dim=4,
                    layer_types=["linear_attention"] * 3, mlp_layer_types=["dense"] * 3, model_max_length=256,
                    rms_norm_eps=1e-5, attn_implementation="eager", bos_token_id=0, eos_token_id=1, pad_token_id=1)
    model = _randomize(KimiLinearForCausalLM(KimiLinearConfig(**{**settings, **overrides})))
    # transformers' cache reads its length from an attention layer, and this model has only KDA layers (its MLA
    # layers wait for llmfs' MLA): the reference runs uncached (generate recomputes the prefix), ours cached.
    model.config.use_cache = model.generation_config.use_cache = False
    return model


def tiny_hf_qwen3_next_moe():
    """Layers 0 and 2 dense (mlp_only_layers, decoder_sparse_step=1), 1 and 3 MoE: softmax top-2 of 8 renormalised,
    one shared expert behind a sigmoid gate."""
    return tiny_hf_qwen3_next(num_experts=8, num_experts_per_tok=2, moe_intermediate_size=24,
                              shared_expert_intermediate_size=24, decoder_sparse_step=1, mlp_only_layers=[0, 2],
                              norm_topk_prob=True)


def tiny_hf_kimi_linear_moe():
    """Layer 0 dense, 1 and 2 MoE: sigmoid top-2 of 8 in 4 groups (2 may be chosen), routed scaling, 1 shared expert,
    a random selection bias."""
    model = tiny_hf_kimi_linear(mlp_layer_types=["dense", "sparse", "sparse"], num_experts=8, num_experts_per_tok=2,
                                moe_intermediate_size=24, num_shared_experts=1, n_group=4, topk_group=2,
                                routed_scaling_factor=2.5, norm_topk_prob=True)
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if "e_score_correction_bias" in name:
                buffer.copy_(0.1 * torch.rand(buffer.shape))
    return model


def tiny_hf_kimi_linear_mla(q_lora_rank=None):
    """3 KDA layers then MLA without positions; layer 0 dense, the rest MoE; transformers caches as usual."""
    model = tiny_hf_kimi_linear(num_hidden_layers=4, layer_types=["linear_attention"] * 3 + ["full_attention"],
                                mlp_layer_types=["dense", "sparse", "sparse", "sparse"], num_experts=8,
                                num_experts_per_tok=2, moe_intermediate_size=24, num_shared_experts=1, n_group=4,
                                topk_group=2, routed_scaling_factor=2.5, q_lora_rank=q_lora_rank, kv_lora_rank=32,
                                qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16, num_key_value_heads=4,
                                eos_token_id=VOCAB - 1)  # id 1 wins a greedy step here; min_new_tokens would ban an eos
    model.config.use_cache = model.generation_config.use_cache = True
    return model


MODELS = {"qwen3_next": tiny_hf_qwen3_next, "kimi_linear_mla": tiny_hf_kimi_linear_mla,
          "kimi_linear_mla_q_lora": lambda: tiny_hf_kimi_linear_mla(q_lora_rank=24), "kimi_linear": tiny_hf_kimi_linear, "kimi_linear_moe": tiny_hf_kimi_linear_moe, "qwen3_next_moe": tiny_hf_qwen3_next_moe}


@pytest.mark.parametrize("family", MODELS)
def test_full_forward_logits_match(family):
    assert_forward_matches(MODELS[family](), seq_len=150)


@pytest.mark.parametrize("family", MODELS)
def test_prefill_and_cached_decoding_match(family):
    assert_cached_decoding_matches(MODELS[family](), prefill=70, total=90)


@pytest.mark.parametrize("family", MODELS)
def test_greedy_generate_matches_transformers(family):
    assert_greedy_generate_matches(MODELS[family](), new_tokens=70)


def test_qwen3_next_layers_follow_its_pattern():
    config = config_from_transformers(tiny_hf_qwen3_next().config)
    kinds = [type(spec.attention) for spec in config.layers]
    assert kinds == [LinearAttention] * 3 + [Attention]
    lin, full = config.layers[0], config.layers[3]
    assert (lin.attention.kind, lin.attention.n_heads, lin.attention.n_v_heads, lin.positions) == (
        "gated_deltanet", 2, 4, None)
    assert full.attention.output_gate and full.attention.qk_norm == "per_head"
    assert full.positions.rotary_dim(16) == 4


def test_qwen3_next_moe_layers_are_mapped_as_settings():
    from llmfs.moe import MoE

    config = config_from_transformers(tiny_hf_qwen3_next_moe().config)
    ffns = [spec.ffn for spec in config.layers]
    assert [isinstance(f, MoE) for f in ffns] == [False, True, False, True]
    moe = ffns[1]
    assert (moe.n_experts, moe.top_k, moe.d_expert, moe.n_shared, moe.router, moe.norm_topk, moe.shared_gate) == (
        8, 2, 24, 1, "softmax", True, True)


def test_qwen3_next_shared_expert_width_must_be_a_multiple():
    from transformers import Qwen3NextConfig

    with pytest.raises(ConversionError, match="shared_expert_intermediate_size"):
        config_from_transformers(Qwen3NextConfig(num_hidden_layers=4, num_experts=8, moe_intermediate_size=24,
                                                 shared_expert_intermediate_size=36))


def test_kimi_linear_full_attention_is_mla_without_positions():
    from llmfs.mla import MLA

    config = config_from_transformers(tiny_hf_kimi_linear_mla().config)
    full = config.layers[3]
    assert isinstance(full.attention, MLA) and full.positions is None
    assert (full.attention.kv_lora_rank, full.attention.q_lora_rank) == (32, None)
    assert [type(spec.ffn).__name__ for spec in config.layers] == ["MLP"] + ["MoE"] * 3
