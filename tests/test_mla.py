"""Multi-head latent attention and DeepSeek Sparse Attention: naive == absorbed, a cache of latents only
(exact bytes), DeepSeek's YaRN terms, sparse attention that is dense when k >= T and never looks ahead,
and bad settings refused with the field named."""

import math

import pytest
import torch

from llmfs import DSA, MLA, MLP, ConfigError, LayerSpec, ModelConfig, Rope, RopeScaling, Transformer, kv_cache_bytes
from llmfs.positions import rope_attention_factor, rope_logit_scale


def model_config(attention, n_layers=2, scaling=None):
    return ModelConfig(vocab_size=97, context_length=64, d_model=64, norm="rmsnorm", n_layers=n_layers,
                       layers=LayerSpec(attention, MLP(96), positions=Rope(scaling=scaling)))


def model(attention, scaling=None):
    torch.manual_seed(0)
    return Transformer(model_config(attention, scaling=scaling)).eval()


ATTENTIONS = {"q-lora": MLA(4, 32, 48, 16, 8, 12), "no-q-lora": MLA(4, 32, None, 16, 8, 12),
              "dsa": DSA(4, 32, 48, 16, 8, 12, index_n_heads=4, index_head_dim=16, index_topk=5)}
YARN = RopeScaling("yarn", factor=4.0, original_context_length=16, mscale=0.707, mscale_all_dim=1.0)


@pytest.mark.parametrize("name", ATTENTIONS)
def test_absorbed_path_equals_naive_path(name):
    m = model(ATTENTIONS[name], scaling=YARN)
    idx = torch.randint(0, 97, (2, 20))
    outputs = []
    for absorb in (False, True):
        for block in m.blocks:
            block.attention.sublayer.absorb = absorb
        with torch.no_grad():
            outputs.append(m(idx))
    assert (outputs[0] - outputs[1]).abs().max().item() <= 1e-5


@pytest.mark.parametrize("name", ATTENTIONS)
def test_cached_decoding_equals_full_forward_and_cache_holds_latents_only(name):
    m = model(ATTENTIONS[name])
    idx = torch.randint(0, 97, (2, 20))
    cache = m.new_cache(batch_size=2)
    with torch.no_grad():
        full = m(idx)
        pieces = [m(idx[:, :11], cache=cache)] + [m(idx[:, t:t + 1], cache=cache) for t in range(11, 20)]
    assert (torch.cat(pieces, dim=1) - full).abs().max().item() <= 1e-5
    assert cache.nbytes == kv_cache_bytes(m.config, 20, batch_size=2, dtype=torch.float32)
    per_token = 32 + 8 + (16 if name == "dsa" else 0)  # latent + rotary key (+ indexer key)
    assert cache.nbytes == 2 * 2 * 20 * per_token * 4


def test_decoding_uses_the_absorbed_path(monkeypatch):
    m = model(ATTENTIONS["q-lora"])
    layer = m.blocks[0].attention.sublayer
    calls = []
    monkeypatch.setattr(layer, "attend_absorbed", lambda *a: calls.append("absorbed") or type(layer).attend_absorbed(layer, *a))
    monkeypatch.setattr(layer, "attend_naive", lambda *a: calls.append("naive") or type(layer).attend_naive(layer, *a))
    cache = m.new_cache(1)
    with torch.no_grad():
        m(torch.randint(0, 97, (1, 6)), cache=cache)
        m(torch.randint(0, 97, (1, 1)), cache=cache)
    assert calls == ["naive", "absorbed"]


def test_deepseek_v3_caches_68_6_kib_per_token_in_bf16():
    layer = LayerSpec(MLA(), MLP(18432), positions=Rope())
    config = ModelConfig(vocab_size=129280, d_model=7168, n_layers=61, layers=layer, norm="rmsnorm")
    assert kv_cache_bytes(config, 1) == 61 * 576 * 2
    assert round(kv_cache_bytes(config, 1) / 1024, 1) == 68.6


def test_deepseek_yarn_mscale_terms():
    factor = 40.0
    scaling = RopeScaling("yarn", factor=factor, original_context_length=4096, mscale=1.0, mscale_all_dim=1.0)
    assert rope_attention_factor(scaling) == 1.0  # equal mscales cancel on cos/sin ...
    assert rope_logit_scale(scaling) == pytest.approx((0.1 * math.log(factor) + 1) ** 2)  # ... and scale the logits
    plain = RopeScaling("yarn", factor=factor, original_context_length=4096)
    assert rope_logit_scale(plain) == 1.0 and rope_attention_factor(plain) == pytest.approx(0.1 * math.log(factor) + 1)
    with pytest.raises(ConfigError, match="mscale"):
        RopeScaling("llama3", mscale=1.0)
    with pytest.raises(ConfigError, match="mscale_all_dim"):
        RopeScaling("yarn", mscale_all_dim=float("nan"))


def test_sparse_attention_is_dense_when_k_covers_the_sequence():
    dense, sparse = ATTENTIONS["q-lora"], DSA(4, 32, 48, 16, 8, 12, index_n_heads=4, index_head_dim=16, index_topk=20)
    m_sparse = model(sparse)
    m_dense = Transformer(model_config(dense)).eval()
    m_dense.load_state_dict({k: v for k, v in m_sparse.state_dict().items() if "indexer" not in k})
    idx = torch.randint(0, 97, (2, 20))
    with torch.no_grad():
        assert (m_sparse(idx) - m_dense(idx)).abs().max().item() <= 1e-5
    selection = m_sparse.blocks[0].attention.sublayer.last_selection
    assert torch.equal(selection[0], torch.ones(20, 20, dtype=torch.bool).tril())


def test_sparse_attention_keeps_k_past_tokens_and_never_the_future():
    m = model(ATTENTIONS["dsa"])
    idx = torch.randint(0, 97, (2, 20))
    with torch.no_grad():
        out = m(idx)
        changed = idx.clone()
        changed[:, 12:] = (changed[:, 12:] + 1) % 97
        assert (m(changed)[:, :12] - out[:, :12]).abs().max().item() == 0  # the future cannot leak back
    selection = m.blocks[0].attention.sublayer.last_selection  # (B, T, S)
    assert not selection.triu(1).any()
    assert torch.equal(selection.sum(-1)[0], torch.arange(1, 21).clamp(max=5))
    assert (m.blocks[0].attention.sublayer.last_selection.sum(-1) <= 5).all()


def test_sparse_attention_changes_the_output_when_k_is_small():
    m = model(ATTENTIONS["dsa"])
    idx = torch.randint(0, 97, (2, 20))
    with torch.no_grad():
        sparse = m(idx)
        for block in m.blocks:
            block.attention.sublayer.top_k = 20
        assert (m(idx)[:, 5:] - sparse[:, 5:]).abs().max().item() > 1e-4
        assert (m(idx)[:, :5] - sparse[:, :5]).abs().max().item() <= 1e-6  # the first 5 see all their past


@pytest.mark.parametrize("settings, field", [
    (MLA(4, 0, 48, 16, 8, 12), "kv_lora_rank"),
    (MLA(4, 65, 48, 16, 8, 12), "kv_lora_rank"),
    (MLA(4, 32, 0, 16, 8, 12), "q_lora_rank"),
    (MLA(4, 32, 100, 16, 8, 12), "q_lora_rank"),
    (MLA(4, 32, 48, 16, 7, 12), "qk_rope_head_dim"),
    (MLA(4, 32, 48, 16, 8, 0), "v_head_dim"),
    (MLA(4, 32, 48, 0, 8, 12), "qk_nope_head_dim"),
    (MLA(4, 32, 48.0, 16, 8, 12), "q_lora_rank"),
    (MLA(True, 32, 48, 16, 8, 12), "n_heads"),
    (DSA(4, 32, 48, 16, 8, 12, index_topk=0), "index_topk"),
    (DSA(4, 32, 48, 16, 8, 12, index_n_heads=0), "index_n_heads"),
    (DSA(4, 32, None, 16, 8, 12), "q_lora_rank"),
])
def test_bad_settings_name_the_layer_mechanism_and_field(settings, field):
    with pytest.raises(ConfigError, match=rf"layer 0: attention \({type(settings).__name__}\): {field}"):
        model_config(settings)


def test_tiny_settings_build_and_print():
    for settings in (MLA(), MLA(q_lora_rank=None), DSA()):
        config = model_config(settings.tiny())
        assert str(settings.tiny()) in str(config)
        Transformer(config)
    assert str(MLA()) == "MLA(128 heads, latent 512 + rope 64, q rank 1536, d_qk=192, d_v=128)"
