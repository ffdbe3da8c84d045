"""ModelConfig: derived sizes, per-layer specs and clear errors for bad values."""

import pytest

from llmfs.config import ConfigError, LayerSpec, ModelConfig, RopeScaling


def test_defaults_describe_gpt2_and_derive_sizes():
    config = ModelConfig()
    assert (config.d_model, config.n_layers, config.n_heads) == (768, 12, 12)
    assert config.n_kv_heads == 12 and config.head_dim == 64 and config.d_ff == 3072
    assert config.layers == (LayerSpec(),) * 12


def test_rope_model_gets_rope_layers():
    config = ModelConfig(positions="rope", n_layers=3)
    assert all(spec.positions == "rope" for spec in config.layers)


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
    assert gqa.n_kv_heads == 4 and all(spec.positions == "rope" for spec in gqa.layers)


def test_replace_keeps_mixed_layers_only_with_their_count():
    layers = (LayerSpec(positions="rope"), LayerSpec(positions="none"))
    config = ModelConfig(positions="rope", n_layers=2, layers=layers)
    assert config.replace(d_model=96, n_heads=4).layers == layers
    with pytest.raises(ConfigError, match="pass `layers` along with a new n_layers"):
        config.replace(n_layers=4)
