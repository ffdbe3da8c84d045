"""gpt-oss: its MoE block (biased router, softmax over the top-k logits = a renormalised softmax, biased experts
with the clamped SwiGLU), the converted model against transformers, and its zoo entries."""

import math

import pytest
import torch

from llmfs import LayerSpec, ModelConfig
from llmfs.moe import MixtureOfExperts, MoE
from llmfs.settings import ConfigError

D, E, K, F = 16, 8, 2, 24


def gpt_oss_block(seed=0):
    """A random transformers GptOssMLP and an llmfs MixtureOfExperts with the same weights."""
    from transformers import GptOssConfig
    from transformers.models.gpt_oss.modeling_gpt_oss import GptOssMLP

    torch.manual_seed(seed)
    config = GptOssConfig(hidden_size=D, intermediate_size=F, num_local_experts=E, num_experts_per_tok=K,
                          swiglu_limit=0.5)
    theirs = GptOssMLP(config).float().eval()
    for p in theirs.parameters():
        torch.nn.init.normal_(p, std=0.5)  # wide enough that the clamps at 0.5 bite
    settings = MoE(E, K, F, norm_topk=True, router_bias=True, expert_bias=True,
                   swiglu_limit=config.swiglu_limit, swiglu_alpha=config.swiglu_alpha)
    ours = MixtureOfExperts(D, settings).eval()
    gate_up, gate_up_bias = theirs.experts.gate_up_proj.data, theirs.experts.gate_up_proj_bias.data
    with torch.no_grad():  # transformers interleaves gate and up columns; llmfs stores [gate | up]
        ours.experts.w_in.copy_(torch.cat([gate_up[..., ::2], gate_up[..., 1::2]], -1))
        ours.experts.b_in.copy_(torch.cat([gate_up_bias[..., ::2], gate_up_bias[..., 1::2]], -1))
        ours.experts.w_out.copy_(theirs.experts.down_proj)
        ours.experts.b_out.copy_(theirs.experts.down_proj_bias)
        ours.router.weight.copy_(theirs.router.weight)
        ours.router.bias.copy_(theirs.router.bias)
    return theirs, ours


@pytest.mark.parametrize("dispatch", ["sorted", "loop"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_moe_block_matches_transformers_gpt_oss(dispatch, seed):
    theirs, ours = gpt_oss_block(seed)
    ours.dispatch = dispatch
    x = torch.randn(3, 11, D)
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    expected = expected[0] if isinstance(expected, tuple) else expected
    assert (got - expected).abs().max() <= 1e-5
    h = x.reshape(-1, D) @ ours.experts.w_in[0]
    assert (h[..., :F] > 0.5).any() and (h[..., F:].abs() > 0.5).any()  # the clamps are exercised


def test_clamped_swiglu_differs_from_plain_silu_gate():
    _, ours = gpt_oss_block()
    x = torch.randn(2, 5, D)
    with torch.no_grad():
        clamped = ours(x)
        ours.experts.limit = None
        plain = ours(x)
    assert (clamped - plain).abs().max() > 1e-3


def test_inactive_parameters_count_expert_biases():
    _, ours = gpt_oss_block()
    per_expert = 2 * F * D + F * D + 2 * F + D
    assert ours.inactive_parameters() == (E - K) * per_expert


@pytest.mark.parametrize("settings, field", [
    (MoE(8, 2, 8, router_bias="yes"), "router_bias must be True or False"),
    (MoE(8, 2, 8, expert_bias=1), "expert_bias must be True or False"),
    (MoE(8, 2, 8, swiglu_limit=float("nan")), "swiglu_limit must be a finite number"),
    (MoE(8, 2, 8, swiglu_limit=math.inf), "swiglu_limit must be a finite number"),
    (MoE(8, 2, 8, swiglu_limit=True), "swiglu_limit must be a finite number"),
    (MoE(8, 2, 8, swiglu_limit="7"), "swiglu_limit must be a finite number"),
    (MoE(8, 2, 8, swiglu_limit=0), "swiglu_limit must be in"),
    (MoE(8, 2, 8, swiglu_limit=7.0, gated=False), "swiglu_limit needs gated=True"),
    (MoE(8, 2, 8, swiglu_alpha=-1.0), "swiglu_alpha must be in"),
    (MoE(8, 2, 8, swiglu_alpha=float("inf")), "swiglu_alpha must be a finite number"),
])
def test_bad_gpt_oss_settings_name_the_field(settings, field):
    with pytest.raises(ConfigError, match=r"ffn \(MoE\): " + field.replace("(", r"\(")):
        ModelConfig(vocab_size=10, context_length=8, d_model=D, n_heads=4, positions="rope",
                    layers=(LayerSpec(ffn=settings),))


def test_tiny_keeps_gpt_oss_fields():
    small = MoE(128, 4, 2880, router_bias=True, expert_bias=True, swiglu_limit=7.0).tiny()
    assert (small.router_bias, small.expert_bias, small.swiglu_limit) == (True, True, 7.0)


WINDOW = 5


def tiny_gpt_oss(rope=None):
    """A tiny random GptOssForCausalLM (fp32, eager) whose sliding layers see fewer tokens than the tests use."""
    from transformers import GptOssConfig, GptOssForCausalLM

    torch.manual_seed(0)
    config = GptOssConfig(vocab_size=300, hidden_size=64, intermediate_size=48, num_hidden_layers=3,
                          num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_local_experts=8,
                          num_experts_per_tok=2, max_position_embeddings=128, sliding_window=WINDOW,
                          layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                          rope_parameters=rope or {"rope_type": "yarn", "rope_theta": 150000.0, "factor": 8.0,
                                                   "beta_fast": 32.0, "beta_slow": 1.0,
                                                   "original_max_position_embeddings": 16},
                          swiglu_limit=0.5, attn_implementation="eager", bos_token_id=0, eos_token_id=1,
                          pad_token_id=1)
    model = GptOssForCausalLM(config).float()
    with torch.no_grad():
        for name, p in model.named_parameters():  # random biases, sinks, norms and router (init leaves some zero)
            if "norm" in name:
                p.copy_(1 + 0.5 * torch.randn(p.shape))
            elif "sinks" in name or "bias" in name or "router" in name or "experts" in name:
                p.copy_(0.3 * torch.randn(p.shape))
    return model.eval()


def test_gpt_oss_converts_with_sinks_windows_and_moe():
    from llmfs.hf import config_from_transformers

    config = config_from_transformers(tiny_gpt_oss().config)
    assert [spec.attention.window for spec in config.layers] == [WINDOW, None, WINDOW]
    assert all(spec.attention.sinks for spec in config.layers)
    moe = config.layers[0].ffn
    assert (moe.router_bias, moe.expert_bias, moe.norm_topk, moe.swiglu_limit) == (True, True, True, 0.5)


def test_gpt_oss_forward_matches_transformers():
    from parity import assert_forward_matches
    assert_forward_matches(tiny_gpt_oss(), seq_len=40)


def test_gpt_oss_cached_decoding_matches_past_the_window():
    from parity import assert_cached_decoding_matches
    assert_cached_decoding_matches(tiny_gpt_oss(), prefill=8, total=24)


def test_gpt_oss_greedy_generate_matches():
    from parity import assert_greedy_generate_matches
    assert_greedy_generate_matches(tiny_gpt_oss(), new_tokens=20)


def test_gpt_oss_yarn_without_truncation_matches_transformers():
    """The released configs say YaRN "truncate": false: the ramp's ends stay fractional (0..0.63 here, not 0..1)."""
    from llmfs.hf import config_from_transformers
    from parity import assert_forward_matches

    rope = {"rope_type": "yarn", "rope_theta": 150000.0, "factor": 8.0, "beta_fast": 32.0, "beta_slow": 1.0,
            "original_max_position_embeddings": 16, "truncate": False}
    reference = tiny_gpt_oss(rope)
    assert config_from_transformers(reference.config).layers[0].positions.scaling.truncate is False
    assert_forward_matches(reference, seq_len=40)


@pytest.mark.parametrize("name", ["gpt-oss-20b", "gpt-oss-120b"])
def test_zoo_gpt_oss_rotary_frequencies_are_the_released_ones(name):
    """At the released sizes the untruncated ramp moves pairs 9-17; the zoo's frequencies equal transformers'."""
    import dataclasses

    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    from llmfs import zoo
    from llmfs.positions import yarn_scaled_frequencies

    config = zoo.get(name)
    scaling = config.layers[0].positions.scaling
    expected, _ = ROPE_INIT_FUNCTIONS["yarn"](released_config(name), "cpu")
    ours = yarn_scaled_frequencies(config.head_dim, config.rope_base, scaling)
    torch.testing.assert_close(ours, expected.float(), rtol=1e-6, atol=0)
    rounded = yarn_scaled_frequencies(config.head_dim, config.rope_base, dataclasses.replace(scaling, truncate=True))
    assert not torch.allclose(rounded, expected.float(), rtol=1e-3)  # the switch matters at this size


def released_config(name):
    """The released config.json of gpt-oss-20b / -120b (they differ in depth and expert count only)."""
    from transformers import GptOssConfig

    layers, experts = {"gpt-oss-20b": (24, 32), "gpt-oss-120b": (36, 128)}[name]
    return GptOssConfig(vocab_size=201088, hidden_size=2880, intermediate_size=2880, num_hidden_layers=layers,
                        num_attention_heads=64, num_key_value_heads=8, head_dim=64, num_local_experts=experts,
                        num_experts_per_tok=4, sliding_window=128, max_position_embeddings=131072,
                        rms_norm_eps=1e-5, swiglu_limit=7.0, tie_word_embeddings=False, attention_bias=True,
                        layer_types=["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(layers)],
                        rope_parameters={"rope_type": "yarn", "rope_theta": 150000.0, "factor": 32.0,
                                         "beta_fast": 32.0, "beta_slow": 1.0, "truncate": False,
                                         "original_max_position_embeddings": 4096})


@pytest.mark.parametrize("name", ["gpt-oss-20b", "gpt-oss-120b"])
def test_zoo_gpt_oss_is_what_transformers_converts_and_counts(name):
    from llmfs import count_parameters, zoo
    from llmfs.hf import config_from_transformers

    hf = released_config(name)
    assert config_from_transformers(hf).replace(name=name) == zoo.get(name)
    with torch.device("meta"):
        from transformers import AutoModelForCausalLM
        reference = AutoModelForCausalLM.from_config(hf)
    count = count_parameters(zoo.get(name))
    assert count.total == sum(p.numel() for p in reference.parameters())
    assert abs(count.total / zoo.PUBLISHED_PARAMETERS[name] - 1) < 0.01
    # the model card's active count leaves out the embedding table (a lookup, not a matmul)
    assert abs((count.active - count.embedding) / zoo.PUBLISHED_ACTIVE_PARAMETERS[name] - 1) < 0.01


@pytest.mark.parametrize("name", ["gpt-oss-20b", "gpt-oss-120b"])
def test_zoo_tiny_gpt_oss_runs_and_keeps_its_mechanisms(name):
    from llmfs import Transformer, zoo

    config = zoo.tiny(name)
    assert [spec.attention.window is not None for spec in config.layers[:2]] == [True, False]
    assert all(spec.attention.sinks and spec.ffn.swiglu_limit == 7.0 for spec in config.layers)
    logits = Transformer(config)(torch.zeros(1, 6, dtype=torch.long))
    assert logits.shape[:2] == (1, 6) and torch.isfinite(logits).all()
