"""llmfs.probes.attention_weights: the weights it returns are the ones the layer used."""

import pytest
import torch

import llmfs
from llmfs.probes import attention_weights


@pytest.mark.parametrize("name", ["gpt2-124m", "qwen3-0.6b"])  # learned positions, MHA; RoPE, QK-norm, GQA
def test_attention_weights_rebuild_the_layer_output(name):
    llmfs.set_seed(0)
    model = llmfs.Transformer(llmfs.zoo.tiny(name, n_layers=2)).eval()
    ids = torch.randint(0, model.config.vocab_size, (2, 9))
    attention = model.blocks[1].attention.sublayer
    seen = {}
    hook = attention.register_forward_hook(lambda module, args, out: seen.update(x=args[0], out=out))
    with torch.no_grad():
        model(ids)
    hook.remove()
    weights = attention_weights(model, ids, layer=1)  # (B, H, T, T)
    B, T, _ = seen["x"].shape
    H, H_kv, d = attention.n_heads, attention.n_kv_heads, attention.head_dim
    assert weights.shape == (B, H, T, T)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, H, T))
    assert (weights.triu(diagonal=1) == 0).all()  # causal
    with torch.no_grad():
        v = attention.v_proj(seen["x"]).view(B, T, H_kv, d).transpose(1, 2).repeat_interleave(H // H_kv, dim=1)
        rebuilt = attention.out_proj((weights @ v).transpose(1, 2).reshape(B, T, H * d))
    torch.testing.assert_close(rebuilt, seen["out"], atol=1e-5, rtol=1e-5)


def test_attention_weights_leave_the_mode_and_refuse_bad_input():
    model = llmfs.Transformer(llmfs.zoo.tiny("gpt2-124m")).train()
    ids = torch.randint(0, 512, (1, 5))
    attention_weights(model, ids)
    assert model.training
    with pytest.raises(ValueError, match="layer"):
        attention_weights(model, ids, layer=7)
    with pytest.raises(ValueError, match="ids"):
        attention_weights(model, ids.float())
