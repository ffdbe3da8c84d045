"""Attention: masks, the written-out scaled dot product, and multi-head attention against PyTorch's SDPA."""

import math

import pytest
import torch
import torch.nn.functional as F

from llmfs.attention import MultiHeadAttention, causal_mask, position_mask, scaled_dot_product_attention
from llmfs.config import ModelConfig


def test_causal_mask():
    assert torch.equal(causal_mask(3), torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool))


def test_position_mask_for_decoding_continues_the_causal_mask():
    full = causal_mask(6)
    assert torch.equal(position_mask(torch.arange(4, 6), torch.arange(6)), full[4:6])


def test_scaled_dot_product_attention_equals_torch():
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 16, generator=gen) for _ in range(3))
    out, weights = scaled_dot_product_attention(q, k, v, causal_mask(7))
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True))
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 7))
    assert torch.all(weights.triu(1) == 0), "no weight on future tokens"


def test_scores_are_scaled_by_sqrt_d():
    q = torch.ones(1, 1, 4)
    k = torch.ones(1, 2, 4)
    v = torch.tensor([[[1.0, 0, 0, 0], [0, 1.0, 0, 0]]])
    _, weights = scaled_dot_product_attention(q, k * torch.tensor([[[1.0], [2.0]]]), v)
    expected = torch.softmax(torch.tensor([4.0, 8.0]) / math.sqrt(4), dim=0)
    torch.testing.assert_close(weights[0, 0], expected)


def manual_multi_head(attn: MultiHeadAttention, x: torch.Tensor) -> torch.Tensor:
    """Loop over heads one at a time; each query head reads its group's K/V head."""
    B, T, _ = x.shape
    q = attn.q_proj(x).view(B, T, attn.n_heads, attn.head_dim)
    k = attn.k_proj(x).view(B, T, attn.n_kv_heads, attn.head_dim)
    v = attn.v_proj(x).view(B, T, attn.n_kv_heads, attn.head_dim)
    group = attn.n_heads // attn.n_kv_heads
    heads = []
    for h in range(attn.n_heads):
        out, _ = scaled_dot_product_attention(q[:, :, h], k[:, :, h // group], v[:, :, h // group], causal_mask(T))
        heads.append(out)
    return attn.out_proj(torch.cat(heads, dim=-1))


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])  # MHA, GQA, MQA
def test_multi_head_attention_equals_head_by_head_loop(n_kv_heads):
    config = ModelConfig(d_model=32, n_heads=4, n_kv_heads=n_kv_heads, n_layers=1, positions="none")
    torch.manual_seed(0)
    attn = MultiHeadAttention(config, config.layers[0])
    x = torch.randn(2, 5, 32)
    torch.testing.assert_close(attn(x, positions=torch.arange(5)), manual_multi_head(attn, x))


def test_fewer_kv_heads_mean_fewer_kv_parameters():
    mha = MultiHeadAttention(c := ModelConfig(d_model=64, n_heads=8, n_layers=1), c.layers[0])
    mqa = MultiHeadAttention(c := ModelConfig(d_model=64, n_heads=8, n_kv_heads=1, n_layers=1), c.layers[0])
    assert mha.k_proj.weight.shape == (64, 64) and mqa.k_proj.weight.shape == (8, 64)
