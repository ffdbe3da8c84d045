"""Linear attention, DeltaNet, Gated DeltaNet and KDA: the recurrent, parallel and chunked forms agree; the layer
caches a fixed-size state (prefill + decoding == full forward, bytes == the formula); bad settings name their field."""

import pytest
import torch

from llmfs import Attention, LayerSpec, MLP, ModelConfig, Rope, Transformer, count_parameters, kv_cache_bytes
from llmfs.config import ConfigError, layer_pattern
from llmfs.linear_attention import LinearAttention, chunked, l2_normalize, parallel, recurrent

B, H, D_K, D_V = 2, 3, 16, 8


pytestmark = pytest.mark.usefixtures("one_thread")


def inputs(T, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = l2_normalize(torch.randn(B, H, T, D_K, generator=g))
    k = l2_normalize(torch.randn(B, H, T, D_K, generator=g))
    v = torch.randn(B, H, T, D_V, generator=g)
    beta = torch.rand(B, H, T, generator=g)
    per_head = -torch.rand(B, H, T, generator=g)
    per_channel = -torch.rand(B, H, T, D_K, generator=g)
    return q, k, v, beta, per_head, per_channel


def relative(got, expected):
    return ((got - expected).abs().max() / expected.abs().max()).item()


RECURRENCES = {  # name -> (uses beta, decay: None / "head" / "channel")
    "linear": (False, None), "gated linear (Mamba-2)": (False, "head"), "per-channel gated": (False, "channel"),
    "deltanet": (True, None), "gated deltanet": (True, "head"), "kda": (True, "channel"),
}


@pytest.mark.parametrize("name", RECURRENCES)
@pytest.mark.parametrize("T, chunk_size", [(100, 32), (64, 64), (7, 16), (1, 16)])
def test_chunked_equals_recurrent(name, T, chunk_size):
    q, k, v, beta, per_head, per_channel = inputs(T)
    uses_beta, decay = RECURRENCES[name]
    kwargs = dict(beta=beta if uses_beta else None,
                  log_decay={None: None, "head": per_head, "channel": per_channel}[decay])
    state0 = torch.randn(B, H, D_K, D_V, generator=torch.Generator().manual_seed(1))
    for state in (None, state0):
        expected, expected_state = recurrent(q, k, v, state=state, **kwargs)
        out, final = chunked(q, k, v, chunk_size=chunk_size, state=state, **kwargs)
        assert relative(out, expected) <= 1e-5 and relative(final, expected_state) <= 1e-5


@pytest.mark.parametrize("decay", [None, "head", "channel"])
def test_parallel_equals_recurrent_without_delta_rule(decay):
    q, k, v, _, per_head, per_channel = inputs(50)
    log_decay = {None: None, "head": per_head, "channel": per_channel}[decay]
    assert relative(parallel(q, k, v, log_decay), recurrent(q, k, v, log_decay)[0]) <= 1e-5


def test_delta_rule_with_beta_one_overwrites_the_value_stored_under_a_key():
    """Online regression: after writing v under unit key k with β = 1, reading k returns exactly v."""
    k = l2_normalize(torch.randn(1, 1, 2, D_K))
    k[:, :, 1] = k[:, :, 0]
    v = torch.randn(1, 1, 2, D_V)
    _, state = recurrent(k, k, v, beta=torch.ones(1, 1, 2))
    torch.testing.assert_close(torch.einsum("bhkv,bhk->bhv", state, k[:, :, 0]), v[:, :, 1])
    _, plain = recurrent(k, k, v)  # plain linear attention adds the two values instead
    torch.testing.assert_close(torch.einsum("bhkv,bhk->bhv", plain, k[:, :, 0]), v[:, :, 0] + v[:, :, 1])


def hybrid_config(kind="gated_deltanet", **linear):
    """Three linear layers per gated full-attention layer (Qwen3-Next's pattern), at width 64."""
    lin = LayerSpec(LinearAttention(kind, 2, 4, 16, 8, chunk_size=16, **linear), MLP(96))
    full = LayerSpec(Attention(4, 2, qk_norm="per_head", output_gate=True), MLP(96), positions=Rope(fraction=0.25))
    return ModelConfig(vocab_size=101, context_length=128, d_model=64, norm="rmsnorm",
                       layers=layer_pattern(4, period=(lin, lin, lin, full)))


LAYER_VARIANTS = [("linear", {}), ("deltanet", {}), ("gated_deltanet", {}), ("kda", {"output_gate": "sigmoid",
                  "low_rank": 8}), ("gated_deltanet", {"conv_size": None, "output_gate": None})]


@pytest.mark.parametrize("kind, linear", LAYER_VARIANTS)
def test_prefill_and_token_by_token_decoding_equal_the_full_forward(kind, linear):
    torch.manual_seed(0)
    config = hybrid_config(kind, **linear)
    model = Transformer(config).eval()
    idx = torch.randint(0, config.vocab_size, (2, 45))
    cache = model.new_cache(batch_size=2)
    with torch.no_grad():
        full = model(idx)
        pieces = [model(idx[:, :21], cache=cache)] + [model(idx[:, t:t + 1], cache=cache) for t in range(21, 45)]
    assert (torch.cat(pieces, dim=1) - full).abs().max().item() <= 1e-5
    assert cache.length == 45


@pytest.mark.parametrize("kind, linear", LAYER_VARIANTS)
def test_cache_bytes_are_fixed_and_counted_exactly(kind, linear):
    config = hybrid_config(kind, **linear)
    model = Transformer(config).eval()
    for dtype in (torch.float32, torch.bfloat16):
        model = model.to(dtype)
        for length in (1, 30):
            cache = model.new_cache(batch_size=3)
            with torch.no_grad():
                model(torch.randint(0, config.vocab_size, (3, length)), cache=cache)
            assert cache.nbytes == kv_cache_bytes(config, length, batch_size=3, dtype=dtype)
    lin = config.layers[0].attention
    assert lin.cache_values(1) == lin.cache_values(10 ** 6) == lin.state_values() + lin.conv_channels * (
        (lin.conv_size or 1) - 1)
    assert count_parameters(config).total == sum(p.numel() for p in model.parameters())


def test_a_linear_layer_is_described_and_shrunk():
    config = hybrid_config()
    text = str(config)
    assert "GatedDeltaNet(2 qk / 4 v heads, d_k=16, d_v=8, conv 4)" in text
    assert "GQA(4 q / 2 kv, d=16, per-head qk-norm, output gate)" in text
    tiny = LinearAttention("kda", 32, low_rank=128).tiny()
    assert (tiny.n_heads, tiny.n_v_heads, tiny.head_dim, tiny.low_rank) == (4, 4, 16, 16)
    assert LinearAttention(n_heads=16, n_v_heads=32).tiny().n_v_heads == 8


def test_gated_attention_scales_the_output_by_a_sigmoid():
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=50, context_length=16, d_model=32, norm="rmsnorm",
                         layers=(LayerSpec(Attention(4, output_gate=True), MLP(64)),))
    layer = Transformer(config).blocks[0].attention.sublayer
    x = torch.randn(1, 5, 32)
    with torch.no_grad():
        layer.gate_proj.weight.zero_()  # sigmoid(0) = 1/2: half of the ungated output (no output bias)
        half = layer(x, torch.arange(5))
        layer.gate_proj = None
        torch.testing.assert_close(half, 0.5 * layer(x, torch.arange(5)))


@pytest.mark.parametrize("field, value, message", [
    ("chunk_size", 48, "chunk_size must be a power of two"),
    ("chunk_size", 0, "chunk_size must be a positive integer"),
    ("chunk_size", -64, "chunk_size must be a positive integer"),
    ("conv_size", 0, "conv_size must be a positive integer or None"),
    ("n_v_heads", 6, "n_v_heads=6 is not divisible by n_heads=4"),
    ("n_heads", 3, "d_model=64 is not divisible by n_heads=3"),
    ("kind", "mamba", "kind='mamba' is not allowed"),
    ("output_gate", "relu", "output_gate='relu' is not allowed"),
])
def test_bad_settings_name_the_layer_the_mechanism_and_the_field(field, value, message):
    spec = LayerSpec(LinearAttention(**{"n_heads": 4, field: value}), MLP(96))
    with pytest.raises(ConfigError, match=f"layer 0: attention \\(LinearAttention\\): {message}"):
        ModelConfig(vocab_size=10, context_length=8, d_model=64, layers=(spec,))


def test_timings_cover_every_form_and_find_the_crossover():
    from llmfs.bench import crossover_length, linear_attention_timings

    rows = linear_attention_timings([16, 64], heads=1, head_dim=8, chunk_size=16, repeats=1, recurrent_up_to=16)
    assert set(rows[0]) == {"length", "chunked", "sdpa", "recurrent"} and "recurrent" not in rows[1]
    fake = [{"length": n, "chunked": c, "sdpa": s} for n, c, s in [(1, 2, 1), (2, 1, 2), (4, 3, 2), (8, 1, 5)]]
    assert crossover_length(fake) == 8 and crossover_length(fake[:1]) is None


def test_mamba2_ssd_scan_is_gated_linear_attention_with_a_scalar_decay():
    """transformers' Mamba-2 torch scan = llmfs' recurrence with q = C, k = B, v = Δ·x, log α = Δ·A (+ D·x)."""
    pytest.importorskip("transformers")
    from transformers.models.mamba2.modeling_mamba2 import mamba2_chunk_scan

    g = torch.Generator().manual_seed(0)
    batch, T, heads, head_dim, groups, state_size = 2, 50, 4, 8, 2, 16
    x = torch.randn(batch, T, heads, head_dim, generator=g)
    dt = torch.rand(batch, T, heads, generator=g) * 0.2
    A = -torch.rand(heads, generator=g) * 4
    B_, C_ = (torch.randn(batch, T, groups, state_size, generator=g) for _ in range(2))
    D = torch.randn(heads, generator=g)
    expected, final = mamba2_chunk_scan(x, dt, A, B_, C_, chunk_size=16, D=D, return_final_states=True)
    per_head = lambda t: t.repeat_interleave(heads // groups, dim=2).transpose(1, 2)  # (batch, heads, T, n)
    v = (x * dt[..., None]).transpose(1, 2)  # (batch, heads, T, head_dim)
    log_decay = (dt * A).transpose(1, 2)  # (batch, heads, T)
    for form in (recurrent, chunked):
        out, state = form(per_head(C_), per_head(B_), v, log_decay)
        out = out.transpose(1, 2) + D[:, None] * x
        assert relative(out, expected) <= 1e-5
        assert relative(state.transpose(-1, -2), final) <= 1e-5  # transformers keeps (head_dim, state_size)
