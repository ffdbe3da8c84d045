"""llmfs.hf.from_pretrained: a tiny random checkpoint saved to a folder loads and matches transformers (no network)."""

import pytest
import torch

from llmfs import hf
from llmfs.model import Transformer

transformers = pytest.importorskip("transformers")


def test_from_pretrained_loads_a_saved_checkpoint(tmp_path):
    torch.manual_seed(0)
    config = transformers.Qwen3Config(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                      tie_word_embeddings=True)
    reference = transformers.Qwen3ForCausalLM(config).eval()
    reference.save_pretrained(tmp_path)
    model = hf.from_pretrained(str(tmp_path), dtype=torch.float32)
    assert isinstance(model, Transformer)
    idx = torch.randint(0, 128, (1, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(idx).logits
        got = model(idx)
    got = got[0] if isinstance(got, tuple) else got
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_from_pretrained_rejects_a_non_path():
    with pytest.raises(TypeError, match="name_or_path"):
        hf.from_pretrained(3)
