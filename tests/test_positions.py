"""Position encodings: RoPE's properties (hypothesis), layouts, partial RoPE, NoPE layers, the context-extension
scalings against transformers' own RoPE init functions, and errors for bad input."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import llmfs
from llmfs import ConfigError, ModelConfig, RopeScaling
from llmfs.config import ROPE_SCALINGS
from llmfs.positions import (
    ROPE_SCALING_FUNCTIONS,
    RotaryPositions,
    apply_rope,
    halves_from_pairs,
    rope_attention_factor,
    rope_frequencies,
    rotate_half,
    rotate_pairs,
    sinusoidal_positions,
)

transformers = pytest.importorskip("transformers")
SETTINGS = settings(max_examples=40, deadline=None)


def rope_config(head_dim=16, rotary_fraction=1.0, scaling=None, base=10000.0, **changes):
    fields = dict(vocab_size=64, context_length=4096, d_model=4 * head_dim, n_layers=1, n_heads=4, head_dim=head_dim,
                  positions="rope", rope_base=base, rope_scaling=scaling, rotary_fraction=rotary_fraction)
    fields.update(changes)
    return ModelConfig(**fields)


def rope_module(config):
    """The RotaryPositions module of a uniform config's layers."""
    return RotaryPositions(config.layers[0].positions, config.head_dim)


def rotate(x, position, config):
    """x (d,) rotated as a query at `position` by the model's RotaryPositions."""
    rope = rope_module(config)
    q, _ = rope(x[None, None, None, :], x[None, None, None, :], torch.tensor([position]))
    return q[0, 0, 0]


# --- RoPE's properties ----------------------------------------------------------------------------------

head_dims = st.sampled_from([2, 4, 8, 16, 64])
positions = st.integers(0, 4000)
seeds = st.integers(0, 2**31 - 1)


@SETTINGS
@given(head_dim=head_dims, m=positions, n=positions, shift=st.integers(-2000, 2000), seed=seeds)
def test_score_depends_only_on_the_offset(head_dim, m, n, shift, seed):
    gen = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, head_dim, generator=gen, dtype=torch.float64)
    config = rope_config(head_dim)
    m2, n2 = m + shift, n + shift
    if min(m2, n2) < 0:
        m2, n2 = m2 - min(m2, n2), n2 - min(m2, n2)
    score = rotate(q.float(), m, config) @ rotate(k.float(), n, config)
    shifted = rotate(q.float(), m2, config) @ rotate(k.float(), n2, config)
    assert abs(score - shifted) <= 1e-3 * (1 + q.norm() * k.norm())


@SETTINGS
@given(head_dim=head_dims, m=positions, seed=seeds, layout=st.sampled_from(["halves", "pairs"]))
def test_rotation_preserves_the_norm(head_dim, m, seed, layout):
    x = torch.randn(3, head_dim, generator=torch.Generator().manual_seed(seed))
    angles = m * rope_frequencies(head_dim)[None, :]
    rotated = apply_rope(x, angles.cos(), angles.sin(), layout=layout)
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1), rtol=1e-5, atol=1e-5)


@SETTINGS
@given(head_dim=head_dims, seed=seeds)
def test_position_zero_is_the_identity_and_rotations_compose(head_dim, seed):
    x = torch.randn(head_dim, generator=torch.Generator().manual_seed(seed))
    config = rope_config(head_dim)
    torch.testing.assert_close(rotate(x, 0, config), x)
    freqs = rope_frequencies(head_dim)
    a, b = 3 * freqs[None, :], 5 * freqs[None, :]
    twice = apply_rope(apply_rope(x[None], a.cos(), a.sin()), b.cos(), b.sin())
    torch.testing.assert_close(twice[0], rotate(x, 8, config), rtol=1e-5, atol=1e-5)


@SETTINGS
@given(head_dim=head_dims, m=positions, seed=seeds)
def test_the_two_layouts_agree_after_the_permutation(head_dim, m, seed):
    x = torch.randn(2, head_dim, generator=torch.Generator().manual_seed(seed))
    angles = m * rope_frequencies(head_dim)[None, :]
    perm = halves_from_pairs(head_dim)
    pairs = apply_rope(x, angles.cos(), angles.sin(), layout="pairs")
    halves = apply_rope(x[:, perm], angles.cos(), angles.sin(), layout="halves")
    torch.testing.assert_close(pairs[:, perm], halves)


def test_rotations_turn_by_ninety_degrees():
    x = torch.arange(1.0, 7.0)
    assert rotate_half(x).tolist() == [-4.0, -5.0, -6.0, 1.0, 2.0, 3.0]
    assert rotate_pairs(x).tolist() == [-2.0, 1.0, -4.0, 3.0, -6.0, 5.0]
    assert halves_from_pairs(6).tolist() == [0, 2, 4, 1, 3, 5]


def test_frequencies_and_sinusoids():
    freqs = rope_frequencies(8, base=10000.0)
    torch.testing.assert_close(freqs, torch.tensor([1.0, 0.1, 0.01, 0.001]))
    table = sinusoidal_positions(5, 8)
    torch.testing.assert_close(table[3, 0::2], (3 * freqs).sin())
    torch.testing.assert_close(table[3, 1::2], (3 * freqs).cos())


# --- partial RoPE and NoPE: what is left untouched --------------------------------------------------------


@SETTINGS
@given(head_dim=st.sampled_from([8, 16, 32]), fraction=st.sampled_from([0.25, 0.5, 0.75, 1.0]), m=positions,
       seed=seeds)
def test_partial_rope_rotates_only_the_leading_dimensions(head_dim, fraction, m, seed):
    config = rope_config(head_dim, rotary_fraction=fraction)
    r = config.rotary_dim
    assert r == head_dim * fraction
    x = torch.randn(head_dim, generator=torch.Generator().manual_seed(seed))
    out = rotate(x, m, config)
    assert torch.equal(out[r:], x[r:])
    angles = m * rope_frequencies(r)[None, :]
    torch.testing.assert_close(out[:r], apply_rope(x[None, :r], angles.cos(), angles.sin())[0])


def test_partial_rope_matches_transformers():
    """StableLM rotates the first `partial_rotary_factor` of each head, split halves -- as llmfs does."""
    from transformers import StableLmConfig
    from transformers.models.stablelm.modeling_stablelm import StableLmRotaryEmbedding, apply_rotary_pos_emb

    hf_config = StableLmConfig(hidden_size=128, num_attention_heads=4, partial_rotary_factor=0.25,
                               rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                "partial_rotary_factor": 0.25})
    rotary = StableLmRotaryEmbedding(hf_config)
    q, k = torch.randn(2, 1, 4, 10, 32, generator=torch.Generator().manual_seed(0))
    position_ids = torch.arange(10)[None]
    cos, sin = rotary(q, position_ids)
    q_rot, k_rot = apply_rotary_pos_emb(q[..., :8], k[..., :8], cos, sin)
    expected_q, expected_k = torch.cat((q_rot, q[..., 8:]), -1), torch.cat((k_rot, k[..., 8:]), -1)
    ours = rope_module(rope_config(32, rotary_fraction=0.25))
    got_q, got_k = ours(q, k, torch.arange(10))
    torch.testing.assert_close(got_q, expected_q)
    torch.testing.assert_close(got_k, expected_k)


def test_nope_layers_leave_queries_and_keys_alone():
    config = ModelConfig(vocab_size=64, d_model=64, layers=tuple(
        llmfs.LayerSpec(llmfs.Attention(4), ffn="gelu_mlp", positions=p) for p in ("rope", "none", "rope", "none")))
    model = llmfs.Transformer(config)
    kinds = [type(block.attention.sublayer.positions).__name__ for block in model.blocks]
    assert kinds == ["RotaryPositions", "NoPositions", "RotaryPositions", "NoPositions"]
    q, k = torch.randn(2, 1, 4, 6, 16)
    nope = model.blocks[1].attention.sublayer.positions
    out_q, out_k = nope(q, k, torch.arange(6))
    assert out_q is q and out_k is k


def test_attention_without_positions_is_permutation_equivariant():
    config = ModelConfig(vocab_size=64, context_length=16, d_model=32, n_layers=1, n_heads=4, positions="none")
    attention = llmfs.MultiHeadAttention(config, config.layers[0])
    x = torch.randn(1, 8, 32)
    perm = torch.randperm(8)

    def full_attention(x):  # every token sees every token: no causal mask, no positions
        q, k, v = (proj(x).view(1, 8, 4, 8).transpose(1, 2)
                   for proj in (attention.q_proj, attention.k_proj, attention.v_proj))
        out, _ = llmfs.scaled_dot_product_attention(q, k, v)
        return out

    torch.testing.assert_close(full_attention(x[:, perm]), full_attention(x)[:, :, perm])


# --- context extension against transformers ---------------------------------------------------------------


def hf_frequencies(rope_parameters, head_dim=64, max_positions=2048, seq_len=None):
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    config = LlamaConfig(hidden_size=4 * head_dim, num_attention_heads=4, max_position_embeddings=max_positions,
                         rope_parameters=dict(rope_parameters))
    return ROPE_INIT_FUNCTIONS[rope_parameters["rope_type"]](config, "cpu", seq_len=seq_len)


factors = st.sampled_from([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
bases = st.sampled_from([10000.0, 500000.0, 5000000.0])
dims = st.sampled_from([16, 64, 128])


@SETTINGS
@given(factor=factors, base=bases, head_dim=dims)
def test_linear_matches_transformers(factor, base, head_dim):
    expected, attention = hf_frequencies({"rope_type": "linear", "rope_theta": base, "factor": factor}, head_dim)
    torch.testing.assert_close(rope_frequencies(head_dim, base, RopeScaling("linear", factor=factor)), expected)
    assert attention == 1.0 == rope_attention_factor(RopeScaling("linear", factor=factor))


@SETTINGS
@given(factor=factors, base=bases, head_dim=dims, stretch=st.sampled_from([1.0, 1.5, 2.0, 4.0]))
def test_ntk_matches_transformers_dynamic_ntk_at_its_sequence_length(factor, base, head_dim, stretch):
    # transformers' "dynamic" NTK, at sequence length L > original M, uses the NTK-aware base with the
    # effective factor  factor * L / M - (factor - 1).
    expected, _ = hf_frequencies({"rope_type": "dynamic", "rope_theta": base, "factor": factor}, head_dim,
                                 max_positions=1024, seq_len=int(1024 * stretch))
    effective = factor * stretch - (factor - 1)
    got = rope_frequencies(head_dim, base, RopeScaling("ntk", factor=effective))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=0)
    assert got[0] == 1.0 and math.isclose(got[-1] * effective, rope_frequencies(head_dim, base)[-1], rel_tol=1e-4)


@SETTINGS
@given(factor=factors, base=bases, head_dim=dims, original=st.sampled_from([256, 4096, 32768]),
       betas=st.sampled_from([(32.0, 1.0), (16.0, 2.0)]), attention_factor=st.sampled_from([None, 1.0, 0.7]))
def test_yarn_matches_transformers(factor, base, head_dim, original, betas, attention_factor):
    params = {"rope_type": "yarn", "rope_theta": base, "factor": factor, "original_max_position_embeddings": original,
              "beta_fast": betas[0], "beta_slow": betas[1]}
    if attention_factor is not None:
        params["attention_factor"] = attention_factor
    expected, expected_attention = hf_frequencies(params, head_dim, max_positions=int(original * factor))
    scaling = RopeScaling("yarn", factor=factor, original_context_length=original, beta_fast=betas[0],
                          beta_slow=betas[1], attention_factor=attention_factor)
    torch.testing.assert_close(rope_frequencies(head_dim, base, scaling), expected, rtol=1e-5, atol=0)
    assert math.isclose(rope_attention_factor(scaling), expected_attention, rel_tol=1e-9)


@SETTINGS
@given(factor=factors, base=bases, head_dim=dims, original=st.sampled_from([64, 8192]),
       low_high=st.sampled_from([(1.0, 4.0), (2.0, 8.0)]))
def test_llama3_matches_transformers(factor, base, head_dim, original, low_high):
    params = {"rope_type": "llama3", "rope_theta": base, "factor": factor, "low_freq_factor": low_high[0],
              "high_freq_factor": low_high[1], "original_max_position_embeddings": original}
    expected, _ = hf_frequencies(params, head_dim, max_positions=int(original * factor))
    scaling = RopeScaling("llama3", factor=factor, low_freq_factor=low_high[0], high_freq_factor=low_high[1],
                          original_context_length=original)
    torch.testing.assert_close(rope_frequencies(head_dim, base, scaling), expected, rtol=1e-5, atol=0)


def test_every_scaling_kind_has_a_function_and_slows_rotation():
    assert set(ROPE_SCALING_FUNCTIONS) == set(ROPE_SCALINGS) == {"linear", "ntk", "yarn", "llama3"}
    plain = rope_frequencies(64, 10000.0)
    for kind in ROPE_SCALINGS:
        scaled = rope_frequencies(64, 10000.0, RopeScaling(kind, factor=8.0, original_context_length=1024))
        assert (scaled <= plain * (1 + 1e-6)).all(), kind  # no pair turns faster than before
        assert math.isclose(scaled[-1], plain[-1] / 8, rel_tol=0.05), kind  # the slowest pair is interpolated


def test_yarn_attention_factor_reaches_the_model():
    scaling = RopeScaling("yarn", factor=16.0, original_context_length=64)
    rope = rope_module(rope_config(16, scaling=scaling))
    cos, sin = rope.cos_sin(torch.arange(5))
    torch.testing.assert_close(cos**2 + sin**2, torch.full((5, 8), (0.1 * math.log(16) + 1) ** 2))


# --- errors -----------------------------------------------------------------------------------------------


def test_unknown_scaling_kind_lists_the_allowed_ones():
    with pytest.raises(ConfigError, match=r"rope_scaling.kind='yarm'.*\['linear', 'llama3', 'ntk', 'yarn'\].*'yarn'"):
        RopeScaling("yarm")


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5, 2])
def test_rotary_fraction_outside_the_unit_interval_is_an_error(fraction):
    with pytest.raises(ConfigError, match=r"rotary_fraction must be in \(0, 1\]"):
        rope_config(16, rotary_fraction=fraction)


@pytest.mark.parametrize("fraction", [0.3, 0.0625, 0.1])
def test_rotary_fraction_giving_an_odd_or_fractional_dimension_is_an_error(fraction):
    with pytest.raises(ConfigError, match=f"rotary_fraction={fraction}"):
        rope_config(16, rotary_fraction=fraction)


def test_odd_head_dim_is_still_an_error_for_rope():
    with pytest.raises(ConfigError, match="head_dim=15 must be even"):
        rope_config(15)
    ModelConfig(head_dim=15, d_model=60, n_heads=4, positions="none")  # no RoPE, no constraint


@pytest.mark.parametrize("changes, message", [
    (dict(factor=0.5), r"rope_scaling.factor must be in \[1, inf\], got 0.5"),
    (dict(beta_fast=1.0, beta_slow=2.0), "beta_slow < beta_fast"),
    (dict(attention_factor=0.0), r"rope_scaling.attention_factor must be in \(0, inf\], got 0.0"),
    (dict(truncate="no"), r"rope_scaling.truncate"),
    (dict(truncate=1), r"rope_scaling.truncate"),
])
def test_bad_scaling_values_name_the_field(changes, message):
    with pytest.raises(ConfigError, match=message):
        RopeScaling("yarn", **changes)


def test_truncate_is_a_yarn_option():
    with pytest.raises(ConfigError, match="rope_scaling.truncate=False is a YaRN option"):
        RopeScaling("linear", truncate=False)


def test_bad_layout_and_odd_rotary_dimension():
    with pytest.raises(ValueError, match="layout='interleaved'.*'halves', 'pairs'"):
        apply_rope(torch.zeros(1, 4), torch.zeros(1, 2), torch.zeros(1, 2), layout="interleaved")
    with pytest.raises(ValueError, match="must be even"):
        rope_frequencies(7)
    with pytest.raises(ValueError, match="must be even"):
        sinusoidal_positions(4, 7)


@pytest.mark.parametrize("fraction", [1.0, 0.5])
def test_rotary_positions_equal_apply_rope_bit_for_bit(fraction):
    """The module rotates from widened tables with a roll; values and gradients must be apply_rope's exactly."""
    from llmfs.positions import Rope, rotate

    torch.manual_seed(0)
    module = RotaryPositions(Rope(fraction=fraction), 32)
    positions = torch.arange(3, 40)
    cos, sin = module.cos_sin(positions)
    r = module.rotary_dim
    for mode in (True, False):
        module.train(mode)
        q = torch.randn(2, 37, 4, 32).transpose(1, 2).requires_grad_()  # not contiguous, as in attention
        k = torch.randn(2, 2, 37, 32, requires_grad=True)
        expected = [torch.cat((apply_rope(t[..., :r], cos, sin), t[..., r:]), dim=-1) for t in (q, k)]
        expected_grads = torch.autograd.grad(sum((e * e.detach().cos()).sum() for e in expected), (q, k))
        rotated = module(q, k, positions)
        grads = torch.autograd.grad(sum((e * e.detach().cos()).sum() for e in rotated), (q, k))
        assert all(torch.equal(a, b) for a, b in zip(rotated, expected))
        assert all(torch.equal(a, b) for a, b in zip(grads, expected_grads))
    x = torch.randn(5, 8)
    c, s = torch.randn(5, 4), torch.randn(5, 4)
    assert torch.equal(rotate(x, torch.cat((c, c), -1), torch.cat((-s, s), -1)), apply_rope(x, c, s))
