"""Normalization layers: the invariances that define LayerNorm and RMSNorm (property tests), and QK-norm."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from llmfs import zoo
from llmfs.attention import FullQKNorm, NoQKNorm, PerHeadQKNorm
from llmfs.config import ConfigError, ModelConfig
from llmfs.norms import NORMS, LayerNorm, RMSNorm, make_norm

PROPERTY = settings(max_examples=40, deadline=None)
seeds = st.integers(0, 2**31 - 1)
dims = st.integers(4, 96)
scales = st.floats(0.1, 100.0)


def features(seed: int, dim: int, rows: int = 3) -> torch.Tensor:
    """(2, rows, dim) float32 features with a spread of magnitudes, drawn from `seed`."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(2, rows, dim, generator=gen) * torch.rand(2, rows, 1, generator=gen).add(0.5)


def random_weights(norm: torch.nn.Module, seed: int) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in norm.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return norm


@PROPERTY
@given(seed=seeds, dim=dims, c=scales)
def test_rmsnorm_is_invariant_to_scaling_its_input(seed, dim, c):
    norm = random_weights(RMSNorm(dim, eps=1e-10), seed)
    x = features(seed, dim)
    torch.testing.assert_close(norm(c * x), norm(x), rtol=1e-4, atol=1e-5)


@PROPERTY
@given(seed=seeds, dim=dims, c=st.floats(0.1, 10.0), shift=st.floats(-10.0, 10.0))
def test_layernorm_is_invariant_to_shifting_and_scaling_its_input(seed, dim, c, shift):
    norm = random_weights(LayerNorm(dim, eps=1e-10), seed)
    x = features(seed, dim)
    torch.testing.assert_close(norm(c * x + shift), norm(x), rtol=1e-3, atol=1e-3)


@PROPERTY
@given(seed=seeds, dim=dims, shift=st.floats(1.0, 10.0))
def test_rmsnorm_is_not_invariant_to_shifts(seed, dim, shift):
    norm = RMSNorm(dim)
    x = features(seed, dim)
    assert (norm(x + shift) - norm(x)).abs().max() > 0.1


@PROPERTY
@given(seed=seeds, dim=dims, kind=st.sampled_from(sorted(NORMS)))
def test_unit_weight_outputs_have_rms_one(seed, dim, kind):
    """Exactly so as eps -> 0: the output's RMS is sqrt(s / (s + eps)) for an input of mean square (or variance) s."""
    x = features(seed, dim)
    out = NORMS[kind](dim, eps=1e-12)(x)
    rms = out.pow(2).mean(-1).sqrt()
    torch.testing.assert_close(rms, torch.ones_like(rms), rtol=1e-3, atol=1e-3)


@PROPERTY
@given(seed=seeds, dim=dims)
def test_rmsnorm_of_centred_input_is_layernorm_without_bias(seed, dim):
    x = features(seed, dim)
    x = x - x.mean(-1, keepdim=True)
    rms, ln = random_weights(RMSNorm(dim, eps=1e-5), seed), LayerNorm(dim, eps=1e-5)
    with torch.no_grad():
        ln.weight.copy_(rms.weight)
    torch.testing.assert_close(rms(x), ln(x), rtol=1e-4, atol=1e-5)


def test_norms_equal_torch_functional():
    x = features(0, 32)
    rms, ln = random_weights(RMSNorm(32, eps=1e-6), 0), random_weights(LayerNorm(32, eps=1e-5), 1)
    torch.testing.assert_close(rms(x), F.rms_norm(x, (32,), rms.weight, eps=1e-6))
    torch.testing.assert_close(ln(x), F.layer_norm(x, (32,), ln.weight, ln.bias, eps=1e-5))


def test_rmsnorm_keeps_the_input_dtype_and_has_half_the_parameters():
    x = features(0, 16).to(torch.bfloat16)
    assert RMSNorm(16).to(torch.bfloat16)(x).dtype == torch.bfloat16
    assert sum(p.numel() for p in RMSNorm(16).parameters()) == 16
    assert sum(p.numel() for p in LayerNorm(16).parameters()) == 32


def test_make_norm_follows_the_config():
    config = ModelConfig(d_model=32, n_heads=4, norm="rmsnorm", norm_eps=1e-6, vocab_size=10)
    norm = make_norm(config)
    assert isinstance(norm, RMSNorm) and norm.eps == 1e-6 and norm.weight.shape == (32,)
    assert make_norm(config, dim=8).weight.shape == (8,)
    assert repr(norm) == "RMSNorm(32, eps=1e-06)"


# --- QK-norm: per head (Qwen3) and at full width (OLMo 2) -------------------------------------------------


def test_per_head_qk_norm_normalizes_each_head_with_a_shared_weight():
    config = zoo.tiny("qwen3-0.6b")  # 4 heads of 16
    norm = random_weights(PerHeadQKNorm(config.head_dim, config.n_heads, config.norm_eps), 0)
    assert norm.weight.shape == (config.head_dim,)
    x = features(0, config.n_heads * config.head_dim)  # (2, 3, 64)
    expected = F.rms_norm(x.view(2, 3, 4, 16), (16,), norm.weight, eps=config.norm_eps).view(2, 3, 64)
    torch.testing.assert_close(norm(x), expected)


def test_full_qk_norm_normalizes_all_heads_together():
    config = zoo.tiny("olmo2-7b")
    norm = random_weights(FullQKNorm(config.head_dim, 2, config.norm_eps), 0)  # e.g. keys with 2 K/V heads
    assert norm.weight.shape == (2 * config.head_dim,)
    x = features(0, 2 * config.head_dim)
    torch.testing.assert_close(norm(x), F.rms_norm(x, (2 * config.head_dim,), norm.weight, eps=config.norm_eps))


def head_rms(t: torch.Tensor) -> torch.Tensor:
    return t.pow(2).mean(-1).sqrt()


def test_per_head_and_full_width_differ_when_heads_have_different_scales():
    config = zoo.tiny("olmo2-7b")
    x = features(0, 64).view(2, 3, 4, 16) * torch.tensor([0.1, 1.0, 3.0, 10.0])[:, None]
    x = x.flatten(-2)
    per_head, full = PerHeadQKNorm(16, 4, config.norm_eps)(x).view(2, 3, 4, 16), FullQKNorm(16, 4, config.norm_eps)(x).view(2, 3, 4, 16)
    torch.testing.assert_close(head_rms(per_head), torch.ones(2, 3, 4), rtol=1e-3, atol=1e-3)
    assert (head_rms(full)[..., 3] > 5 * head_rms(full)[..., 0]).all()  # full width keeps heads' relative scale
    assert isinstance(NoQKNorm(16, 4, config.norm_eps), torch.nn.Identity)


@pytest.mark.parametrize("kind", ["per_head", "full"])
def test_qk_norm_makes_attention_blind_to_the_scale_of_q_and_k(kind):
    """Scaling q_proj's and k_proj's weights leaves attention unchanged once q and k are normalized."""
    from llmfs.attention import MultiHeadAttention

    torch.manual_seed(0)
    config = zoo.tiny("olmo2-7b", qk_norm=kind, n_kv_heads=2)
    attention = MultiHeadAttention(config, config.layers[0]).eval()
    x, positions = torch.randn(2, 7, 64), torch.arange(7)
    before = attention(x, positions)
    with torch.no_grad():
        attention.q_proj.weight.mul_(37.0)
        attention.k_proj.weight.mul_(5.0)
    torch.testing.assert_close(attention(x, positions), before, rtol=1e-3, atol=1e-4)
    config_without = config.replace(qk_norm=None)
    plain = MultiHeadAttention(config_without, config_without.layers[0])
    plain.load_state_dict(attention.state_dict(), strict=False)
    assert (plain(x, positions) - before).abs().max() > 1e-2  # without QK-norm the scale matters
    assert attention.k_norm.weight.numel() == (16 if kind == "per_head" else 2 * 16)


def test_unknown_qk_norm_is_an_error():
    with pytest.raises(ConfigError, match="qk_norm='per_layer' is not allowed"):
        ModelConfig(qk_norm="per_layer")
