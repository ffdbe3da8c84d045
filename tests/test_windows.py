"""Sliding windows, sink tokens and learned sinks (chapter 5): masks, the ring-buffer cache, counts and bad input."""

import pytest
import torch

from llmfs import Attention, LayerSpec, ModelConfig, Rope, Transformer, kv_cache_bytes
from llmfs.attention import attention_with_sinks, window_mask
from llmfs.cache import WindowLayerCache
from llmfs.config import ConfigError, layer_pattern
from llmfs.norms import OffsetRMSNorm, RMSNorm


def windowed(window=5, sink_tokens=0, sinks=False, n_layers=3, norm="rmsnorm", **fields):
    """Local layers with `window` and a global layer every third, GQA, each with its own RoPE base."""
    local = LayerSpec(Attention(4, 2, window=window, sink_tokens=sink_tokens, sinks=sinks), "swiglu",
                      positions=Rope(base=10000.0))
    glob = LayerSpec(Attention(4, 2, sinks=sinks), "swiglu", positions=Rope(base=1e6))
    return ModelConfig(vocab_size=61, context_length=128, d_model=32, norm=norm,
                       layers=layer_pattern(n_layers, period=(local, local, glob)), **fields)


def test_window_mask_is_a_band_and_sink_tokens_stay_visible():
    pos = torch.arange(6)
    band = window_mask(pos, pos, window=3)
    expected = torch.tensor([[1 if 0 <= i - j < 3 else 0 for j in range(6)] for i in range(6)], dtype=torch.bool)
    assert torch.equal(band, expected)
    with_sinks = window_mask(pos, pos, window=3, sink_tokens=1)
    assert with_sinks[:, 0].all() and torch.equal(with_sinks[:, 1:], expected[:, 1:])
    assert torch.equal(window_mask(pos, pos), torch.ones(6, 6, dtype=torch.bool).tril())


@pytest.mark.parametrize("sink_tokens", [0, 2])
def test_ring_buffer_stops_growing_and_keeps_the_positions(sink_tokens):
    cache = WindowLayerCache(batch_size=1, window=4, sink_tokens=sink_tokens)
    for t in range(11):
        cache.update(torch.full((1, 1, 1, 2), float(t)), torch.zeros(1, 1, 1, 2))
        assert cache.tensors[0].shape[2] == min(t + 1, 4 + sink_tokens)
    keys = cache.tensors[0][0, 0, :, 0].long()
    assert torch.equal(keys, cache.positions)  # each slot holds the token at its recorded position
    assert sorted(cache.positions.tolist()) == list(range(sink_tokens)) + list(range(7, 11))
    assert int(cache.slot(torch.tensor(10))) == sink_tokens + (10 - sink_tokens) % 4


@pytest.mark.parametrize("fields", [dict(), dict(sink_tokens=2), dict(sinks=True), dict(sinks=True, sink_tokens=1)])
def test_cached_decoding_beyond_the_window_equals_the_full_forward(fields):
    torch.manual_seed(0)
    model = Transformer(windowed(**fields)).eval()
    with torch.no_grad():
        for p in model.parameters():  # learned sinks start at zero; make them matter
            if p.dim() == 1:
                p.add_(torch.randn(p.shape))
        idx = torch.randint(0, 61, (2, 30))
        full = model(idx)
        cache = model.new_cache(2)
        pieces = [model(idx[:, :7], cache=cache)] + [model(idx[:, t:t + 1], cache=cache) for t in range(7, 20)]
        pieces.append(model(idx[:, 20:], cache=cache))  # a chunk longer than the window, after a full ring
    assert (torch.cat(pieces, dim=1) - full).abs().max().item() <= 1e-5


def test_a_window_changes_the_output_only_beyond_the_window():
    torch.manual_seed(0)
    config = windowed(window=6)
    model = Transformer(config).eval()
    full_attention = Transformer(config.replace(layers=tuple(
        spec.replace(attention=spec.attention.__class__(4, 2)) for spec in config.layers))).eval()
    full_attention.load_state_dict(model.state_dict())
    idx = torch.randint(0, 61, (1, 20))
    with torch.no_grad():
        diff = (model(idx) - full_attention(idx)).abs().amax(dim=(0, 2))
    assert diff[:6].max() <= 1e-6 and diff[6:].min() > 1e-4


@pytest.mark.parametrize("sink_tokens", [0, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cache_bytes_formula_equals_what_a_windowed_cache_holds(sink_tokens, dtype):
    config = windowed(window=5, sink_tokens=sink_tokens)
    model = Transformer(config).to(dtype)
    cache = model.new_cache(3)
    for n in (3, 5, 9, 30):
        model(torch.randint(0, 61, (3, n - cache.length)), cache=cache)
        assert cache.nbytes == kv_cache_bytes(config, n, batch_size=3, dtype=dtype)
    per_token = 2 * 2 * 8 * torch.empty((), dtype=dtype).element_size()
    assert kv_cache_bytes(config, 30, dtype=dtype) == per_token * (2 * (5 + sink_tokens) + 30)
    full = config.replace(layers=tuple(s.replace(attention=Attention(4, 2)) for s in config.layers))
    assert kv_cache_bytes(config, 5, dtype=dtype) == kv_cache_bytes(full, 5, dtype=dtype)


def test_learned_sinks_take_attention_mass_off_the_keys():
    q, k, v = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4), torch.ones(1, 2, 3, 4)
    mask = window_mask(torch.arange(3), torch.arange(3))
    plain = attention_with_sinks(q, k, v, mask, torch.full((2,), -1e4), 0.5)
    assert torch.allclose(plain, torch.ones_like(plain), atol=1e-5)  # a very negative sink: plain softmax
    sunk = attention_with_sinks(q, k, v, mask, torch.tensor([0.0, 3.0]), 0.5)  # weights sum to < 1
    assert (sunk < 1).all() and sunk[0, 1].max() < sunk[0, 0].min()


def test_learned_sinks_are_one_parameter_per_head():
    model = Transformer(windowed(sinks=True))
    assert model.blocks[0].attention.sublayer.sinks.shape == (4,)
    assert "sinks" not in dict(Transformer(windowed()).blocks[0].attention.sublayer.named_parameters())


def test_offset_rmsnorm_and_gemma_options():
    norm = OffsetRMSNorm(8)
    x = torch.randn(3, 8)
    assert torch.allclose(norm(x), RMSNorm(8)(x), atol=1e-6)  # zero offsets: unit scale
    config = windowed(norm="offset_rmsnorm", scale_embeddings=True, logit_softcap=3.0)
    model = Transformer(config)
    assert isinstance(model.final_norm, OffsetRMSNorm)
    logits = model(torch.randint(0, 61, (1, 9)))
    assert logits.abs().max() < 3.0
    assert "embeddings ×√d_model" in str(config) and "soft-capped at 3" in str(config)
    assert "window 5" in str(config)


def test_scale_changes_the_logit_temperature():
    torch.manual_seed(0)
    config = windowed()
    model = Transformer(config).eval()
    scaled = Transformer(config.replace(layers=tuple(
        s.replace(attention=s.attention.__class__(**{**s.attention.__dict__, "scale": 0.25}))
        for s in config.layers))).eval()
    scaled.load_state_dict(model.state_dict())
    idx = torch.randint(0, 61, (1, 8))
    with torch.no_grad():
        assert (model(idx) - scaled(idx)).abs().max() > 1e-4
    assert Attention(4, head_dim=16).resolved(64).softmax_scale == 0.25


@pytest.mark.parametrize("field, value, message", [
    ("window", 0, "window must be a positive integer"),
    ("window", -3, "window must be a positive integer"),
    ("window", 2.0, "window must be a positive integer"),
    ("sink_tokens", -1, "sink_tokens must be an integer >= 0"),
    ("sinks", "yes", "sinks must be True or False"),
    ("scale", float("nan"), "scale must be a finite number"),
])
def test_bad_attention_fields_name_the_layer_and_field(field, value, message):
    with pytest.raises(ConfigError, match=rf"layer 0: attention \(Attention\): {message}"):
        ModelConfig(d_model=32, n_layers=1, layers=(LayerSpec(Attention(4, **{field: value})),))


def test_sink_tokens_without_a_window_and_bad_model_options_are_refused():
    with pytest.raises(ConfigError, match="sink_tokens=2 needs a window"):
        ModelConfig(d_model=32, n_layers=1, layers=(LayerSpec(Attention(4, sink_tokens=2)),))
    with pytest.raises(ConfigError, match="logit_softcap must be in"):
        windowed(logit_softcap=0.0)
    with pytest.raises(ConfigError, match="scale_embeddings must be True or False"):
        windowed(scale_embeddings=1)


def test_a_layer_pattern_longer_than_the_model_is_refused():
    local, glob = LayerSpec(Attention(4, window=4)), LayerSpec(Attention(4))
    with pytest.raises(ConfigError, match="period of 6 layers does not fit in n_layers=4"):
        layer_pattern(4, period=(local,) * 5 + (glob,))


def test_windowed_config_relays_its_pattern_and_describes_it():
    config = windowed(n_layers=6)
    assert [s.attention.window for s in config.layers] == [5, 5, None] * 2
    assert [s.positions.base for s in config.replace(n_layers=9).layers][-3:] == [1e4, 1e4, 1e6]
    assert "GQA(4 q / 2 kv, d=8, window 5)" in str(config)
