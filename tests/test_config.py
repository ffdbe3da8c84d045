"""ModelConfig: derived sizes, per-layer specs and clear errors for bad values."""

import math

import pytest

from llmfs import Attention, MLP, Rope
from llmfs.config import ConfigError, LayerSpec, ModelConfig, RopeScaling, find_pattern, layer_pattern


def test_defaults_describe_gpt2_and_derive_sizes():
    config = ModelConfig()
    assert (config.d_model, config.n_layers, config.n_heads) == (768, 12, 12)
    assert config.n_kv_heads == 12 and config.head_dim == 64 and config.d_ff == 3072
    gpt2_block = LayerSpec(Attention(12, 12, 64, qkv_bias=True, out_bias=True),
                           MLP(3072, activation="gelu", gated=False, bias=True))
    assert config.layers == (gpt2_block,) * 12
    assert config.learned_positions and config.positions == "learned" and config.ffn == "gelu_mlp"


def test_rope_model_gets_rope_layers():
    config = ModelConfig(positions="rope", n_layers=3, rope_base=5e5)
    assert all(spec.positions == Rope(base=5e5) for spec in config.layers)
    assert not config.learned_positions and config.rope_base == 5e5


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(d_model=100, n_heads=12), "d_model=100 is not divisible by n_heads=12"),
        (dict(n_heads=12, n_kv_heads=5), "n_heads=12 is not divisible by n_kv_heads=5"),
        (dict(d_model=-8), "d_model must be a positive integer"),
        (dict(n_layers=0), "n_layers must be a positive integer"),
        (dict(vocab_size=2.5), "vocab_size must be a positive integer"),
        (dict(norm="batchnorm"), "norm='batchnorm' is not allowed"),
        (dict(ffn="swigelu"), "Did you mean 'swiglu'"),
        (dict(positions="alibi"), "positions='alibi' is not allowed"),
        (dict(dropout=1.5), "dropout must be in [0, 1)"),
        (dict(positions="rope", head_dim=15, n_heads=4, d_model=64), "head_dim=15 must be even"),
        (dict(n_layers=2, layers=(LayerSpec(),)), "layers has 1 specs but n_layers=2"),
        (dict(qk_norm="full_width"), "qk_norm='full_width' is not allowed"),
        (dict(norm_eps=math.nan), "norm_eps must be a finite number, got nan"),
        (dict(norm_eps=math.inf), "norm_eps must be a finite number, got inf"),
        (dict(positions="rope", rope_base=math.nan), "rope_base must be a finite number"),
        (dict(positions="rope", rope_base=1.0), "rope_base must be in (1, inf]"),
        (dict(tie_embeddings="false"), "tie_embeddings must be True or False, got 'false'"),
        (dict(qkv_bias="yes"), "qkv_bias must be True or False"),
        (dict(d_ff=0), "d_ff must be a positive integer, got 0"),
        (dict(n_heads="4"), "n_heads must be a positive integer, got '4'"),
        (dict(dropout=math.nan), "dropout must be a finite number"),
        (dict(heads=4), "ModelConfig has no field 'heads'. Did you mean 'n_heads'?"),
        (dict(positions="none", rope_base=5e5), "rope_base=500000.0 needs layers with RoPE"),
    ],
)
def test_bad_values_name_the_field(fields, message):
    with pytest.raises(ConfigError) as error:
        ModelConfig(**fields)
    assert message in str(error.value)


def test_bad_layer_spec_lists_allowed_values():
    allowed = r"\['post', 'post_sublayer', 'pre', 'sandwich'\]"
    with pytest.raises(ConfigError, match=r"norm_placement='middle' is not allowed; choose one of " + allowed):
        LayerSpec(norm_placement="middle")


def test_bad_rope_scaling():
    with pytest.raises(ConfigError, match="rope_scaling.kind='yarn2'"):
        RopeScaling(kind="yarn2")
    with pytest.raises(ConfigError, match="low_freq_factor < high_freq_factor"):
        RopeScaling(low_freq_factor=4.0, high_freq_factor=1.0)


def test_replace_derives_sizes_again():
    small = ModelConfig().replace(d_model=128, n_heads=4, n_layers=2)
    assert (small.head_dim, small.d_ff, small.n_kv_heads, len(small.layers)) == (32, 512, 4, 2)
    gqa = ModelConfig(positions="rope", n_kv_heads=4).replace(n_layers=3)
    assert gqa.n_kv_heads == 4 and all(spec.positions == Rope() for spec in gqa.layers)


def test_replace_keeps_mixed_layers_only_with_their_count():
    layers = (LayerSpec(Attention(4), positions="rope"), LayerSpec(Attention(4), positions="none"))
    config = ModelConfig(n_layers=2, layers=layers, d_model=64)
    assert [spec.positions for spec in config.replace(d_model=96).layers] == [Rope(), None]
    assert config.replace(d_model=96).head_dim == 24  # derived again from the new width
    with pytest.raises(ConfigError, match="pass `layers` along with a new n_layers"):
        config.replace(n_layers=4)


def test_shorthand_reads_refuse_layers_that_differ():
    wide, narrow = LayerSpec(Attention(4), MLP(256)), LayerSpec(Attention(4), MLP(64))
    config = ModelConfig(d_model=64, layers=(wide, narrow))
    assert config.n_heads == 4 and config.n_layers == 2
    with pytest.raises(AttributeError, match=r"d_ff is not one value for this config's layers \(\['256', '64'\]\)"):
        config.d_ff
    assert config.replace(d_ff=32).d_ff == 32  # a shorthand change sets every layer


# --- layers that differ: patterns, a hybrid stack, errors that name the layer --------------------------------


def test_layer_pattern_first_and_period():
    a, b, c = LayerSpec(Attention(4)), LayerSpec(Attention(2)), LayerSpec(Attention(1))
    assert layer_pattern(7, period=(b, b, c), first=(a,)) == (a, b, b, c, b, b, c)
    assert find_pattern((a, b, b, c, b, b, c)) == ((a,), (b, b, c))
    assert find_pattern((a,) * 5) == ((), (a,))
    assert find_pattern((a, a, a, b, b)) == ((a, a, a), (b,))
    with pytest.raises(ConfigError, match="3 first layers but n_layers=2"):
        layer_pattern(2, period=(b,), first=(a, a, a))


@pytest.mark.parametrize(
    "layer, message",
    [
        (LayerSpec(Attention(6, 4, head_dim=8)), "layer 3: attention (Attention): n_heads=6 is not divisible by n_kv_heads=4"),
        (LayerSpec(Attention(4), MLP(0)), "layer 3: ffn (MLP): d_ff must be a positive integer, got 0"),
        (LayerSpec(Attention(5)), "layer 3: attention (Attention): d_model=32 is not divisible by n_heads=5"),
        (LayerSpec(Attention(4), MLP(activation="relu")), "layer 3: ffn (MLP): activation='relu' is not allowed"),
        (LayerSpec(Attention(4, head_dim=6), positions=Rope(fraction=0.5)),
         "layer 3: positions (Rope): rotary_fraction=0.5 of head_dim=6 gives 3 rotated dimensions"),
        (LayerSpec(Attention(4), positions=Rope(base=math.inf)), "layer 3: positions (Rope): rope_base must be a finite"),
    ],
)
def test_a_bad_setting_inside_a_mechanism_names_the_layer_and_field(layer, message):
    good = LayerSpec(Attention(4))
    with pytest.raises(ConfigError) as error:
        ModelConfig(d_model=32, layers=(good, good, good, layer, good))
    assert message in str(error.value)
