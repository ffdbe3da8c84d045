"""Qwen3-MoE, Mixtral and OLMoE against transformers: tiny random models (no downloads), same logits in a full
forward and in cached decoding, same greedy tokens; configs map dense and sparse layers; counts match."""

import pytest
import torch
from parity import assert_cached_decoding_matches, assert_forward_matches, assert_greedy_generate_matches

from llmfs import zoo
from llmfs.counting import count_parameters
from llmfs.ffn import MLP
from llmfs.hf import config_from_transformers
from llmfs.moe import MoE

transformers = pytest.importorskip("transformers")
SMALL = dict(vocab_size=300, hidden_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=128, rms_norm_eps=1e-6, attn_implementation="eager",
             bos_token_id=0, eos_token_id=1, pad_token_id=1)


def randomized(model):
    """Random norm gains (ones would hide a misplaced norm) and a router wide enough to separate experts."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.5 * torch.randn(p.shape))
            elif name.endswith("gate.weight"):
                p.normal_(0, 0.3)
    return model.eval()


def qwen3_moe(norm_topk_prob=True, mlp_only_layers=(), decoder_sparse_step=1):
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

    torch.manual_seed(0)
    return randomized(Qwen3MoeForCausalLM(Qwen3MoeConfig(
        **SMALL, head_dim=16, intermediate_size=96, moe_intermediate_size=32, num_experts=8, num_experts_per_tok=3,
        norm_topk_prob=norm_topk_prob, mlp_only_layers=list(mlp_only_layers), decoder_sparse_step=decoder_sparse_step,
        tie_word_embeddings=False)))


def mixtral():
    from transformers import MixtralConfig, MixtralForCausalLM

    torch.manual_seed(0)
    return randomized(MixtralForCausalLM(MixtralConfig(**SMALL, intermediate_size=32, num_local_experts=8,
                                                       num_experts_per_tok=2, tie_word_embeddings=False)))


def olmoe():
    from transformers import OlmoeConfig, OlmoeForCausalLM

    torch.manual_seed(0)
    return randomized(OlmoeForCausalLM(OlmoeConfig(**SMALL, intermediate_size=32, num_experts=8,
                                                   num_experts_per_tok=3, norm_topk_prob=False)))


MODELS = {
    "qwen3_moe renormalised": lambda: qwen3_moe(True),
    "qwen3_moe plain, dense layers": lambda: qwen3_moe(False, mlp_only_layers=[0], decoder_sparse_step=2),
    "mixtral": mixtral,
    "olmoe": olmoe,
}


@pytest.mark.parametrize("name", MODELS)
def test_full_forward_logits_match(name):
    assert_forward_matches(MODELS[name]())


@pytest.mark.parametrize("name", MODELS)
def test_prefill_and_cached_decoding_match(name):
    assert_cached_decoding_matches(MODELS[name]())


@pytest.mark.parametrize("name", MODELS)
def test_greedy_generate_matches_transformers(name):
    assert_greedy_generate_matches(MODELS[name]())


def test_qwen3_moe_dense_layers_follow_mlp_only_layers_and_sparse_step():
    config = config_from_transformers(qwen3_moe(False, mlp_only_layers=[0], decoder_sparse_step=2).config)
    kinds = [type(spec.ffn) for spec in config.layers]
    assert kinds == [MLP, MoE, MLP]  # layer 0: mlp_only; layer 2: (2 + 1) % 2 != 0
    assert config.layers[1].ffn == MoE(8, 3, 32, norm_topk=False)
    assert config.layers[0].ffn.d_ff == 96


def test_mixtral_and_olmoe_map_their_routers():
    assert config_from_transformers(mixtral().config).layers[0].ffn == MoE(8, 2, 32, norm_topk=True)
    config = config_from_transformers(olmoe().config)
    assert config.layers[0].ffn == MoE(8, 3, 32, norm_topk=False) and config.qk_norm == "full"


@pytest.mark.parametrize("name, hf", [
    ("qwen3-30b-a3b", dict(hidden_size=2048, num_hidden_layers=48, num_attention_heads=32, num_key_value_heads=4,
                           moe_intermediate_size=768)),
    ("qwen3-235b-a22b", dict(hidden_size=4096, num_hidden_layers=94, num_attention_heads=64, num_key_value_heads=4,
                             moe_intermediate_size=1536)),
])
def test_zoo_qwen3_moe_equals_transformers_config_and_count(name, hf):
    """Written from the model cards independently of the zoo: same config, same parameter count as transformers."""
    from transformers import Qwen3MoeConfig

    hf_config = Qwen3MoeConfig(vocab_size=151936, head_dim=128, num_experts=128, num_experts_per_tok=8,
                               norm_topk_prob=True, max_position_embeddings=40960, rms_norm_eps=1e-6,
                               rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                               tie_word_embeddings=False, **hf)
    ours = config_from_transformers(hf_config)
    assert [spec.ffn for spec in ours.layers] == [spec.ffn for spec in zoo.get(name).layers]
    with torch.device("meta"):
        reference = transformers.AutoModelForCausalLM.from_config(hf_config)
    assert count_parameters(zoo.get(name)).total == sum(p.numel() for p in reference.parameters())


@pytest.mark.parametrize("name, hf", [
    ("deepseek-v3", dict(vocab_size=129280, num_attention_heads=128, n_routed_experts=256, n_group=8, topk_group=4,
                         first_k_dense_replace=3, routed_scaling_factor=2.5)),
    ("kimi-k2", dict(vocab_size=163840, num_attention_heads=64, n_routed_experts=384, n_group=1, topk_group=1,
                     first_k_dense_replace=1, routed_scaling_factor=2.827)),
])
def test_zoo_deepseek_v3_and_kimi_k2_count_like_transformers(name, hf):
    """MLA + dense first layers + MoE (chapters 4 and 6): the zoo's count equals transformers' DeepSeek-V3 model
    built from the model cards' sizes, and total/active are near the published figures."""
    from transformers import DeepseekV3Config

    hf_config = DeepseekV3Config(hidden_size=7168, intermediate_size=18432, moe_intermediate_size=2048,
                                 num_hidden_layers=61, num_key_value_heads=hf["num_attention_heads"], n_shared_experts=1,
                                 num_experts_per_tok=8, kv_lora_rank=512, q_lora_rank=1536, qk_nope_head_dim=128,
                                 qk_rope_head_dim=64, v_head_dim=128, tie_word_embeddings=False, **hf)
    with torch.device("meta"):
        reference = transformers.AutoModelForCausalLM.from_config(hf_config)
    # transformers keeps the router's selection bias (e_score_correction_bias) as a parameter; llmfs as a buffer
    bias = sum(p.numel() for n, p in reference.named_parameters() if "e_score_correction_bias" in n)
    count = count_parameters(zoo.get(name))
    assert count.total == sum(p.numel() for p in reference.parameters()) - bias
    # Kimi K2's report says 1.04T; the released config counts 1.026T (1.3% less)
    assert abs(count.total / zoo.PUBLISHED_PARAMETERS[name] - 1) < 0.015
    assert abs(count.active / zoo.PUBLISHED_ACTIVE_PARAMETERS[name] - 1) < 0.03
