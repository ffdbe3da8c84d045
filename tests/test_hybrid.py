"""A hybrid stack whose layers differ in attention settings, positions, norm placement and FFN width: it prints
its pattern, builds, runs, caches exactly, and is counted exactly (parameters and cache bytes)."""

import torch

from llmfs import Attention, LayerSpec, MLP, ModelConfig, Rope, Transformer, count_parameters, kv_cache_bytes
from llmfs.config import layer_pattern


def hybrid():
    """Layers that differ in attention (MHA / GQA / MQA, RoPE base, QK-norm) and FFN width, 3 first + period 2."""
    dense = LayerSpec(Attention(4), MLP(128, activation="gelu", gated=False), positions=Rope(base=10000.0))
    local = LayerSpec(Attention(4, 2, qk_norm="per_head"), MLP(48), positions=Rope(base=1000.0))
    glob = LayerSpec(Attention(8, 1, head_dim=8), MLP(96), norm_placement="sandwich", positions=None)
    return ModelConfig(vocab_size=97, context_length=64, d_model=32, norm="rmsnorm",
                       layers=layer_pattern(7, period=(local, glob), first=(dense,)))


def test_hybrid_config_prints_its_pattern():
    text = str(hybrid())
    assert "1 × [MHA(4 heads, d=8) · RoPE(θ=10000) · GELU-MLP(128)]" in text
    assert "3 × ( 1 × [GQA(4 q / 2 kv, d=8, per-head qk-norm) · RoPE(θ=1000) · SwiGLU(48)]" in text
    assert "+ 1 × [MQA(8 q / 1 kv, d=8) · NoPE · SwiGLU(96), sandwich-norm] )" in text
    deeper = hybrid().replace(n_layers=9)
    assert deeper.layers[7:] == hybrid().layers[1:3]


def test_hybrid_model_runs_and_cached_decoding_equals_full_forward():
    torch.manual_seed(0)
    config = hybrid()
    model = Transformer(config).eval()
    idx = torch.randint(0, config.vocab_size, (2, 20))
    cache = model.new_cache(batch_size=2)
    with torch.no_grad():
        full = model(idx)
        pieces = [model(idx[:, :11], cache=cache)] + [model(idx[:, t:t + 1], cache=cache) for t in range(11, 20)]
    assert (torch.cat(pieces, dim=1) - full).abs().max().item() <= 1e-5
    assert cache.length == 20


def test_hybrid_model_is_counted_exactly():
    config = hybrid()
    model = Transformer(config)
    assert count_parameters(config).total == sum(p.numel() for p in model.parameters())
    widths = [block.ffn.sublayer.up.out_features if hasattr(block.ffn.sublayer, "up")
              else block.ffn.sublayer.fc_in.out_features for block in model.blocks]
    assert widths == [128, 48, 96, 48, 96, 48, 96]
    for dtype in (torch.float32, torch.bfloat16):
        cache = model.to(dtype).new_cache(batch_size=3)
        model(torch.randint(0, config.vocab_size, (3, 13)), cache=cache)
        assert cache.nbytes == kv_cache_bytes(config, 13, batch_size=3, dtype=dtype)
    # per token: MHA 2*4*8, GQA 2*2*8 (x3), MQA 2*1*8 (x3) numbers
    assert kv_cache_bytes(config, 1, dtype=torch.float32) == 4 * (64 + 3 * 32 + 3 * 16)
