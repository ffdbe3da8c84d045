"""FlashAttention's online softmax in PyTorch (llmfs.kernels.attention_by_blocks) equals plain attention."""

import math

import pytest
import torch

from llmfs.kernels import attention_by_blocks


@pytest.mark.parametrize("block_n", [1, 7, 16, 48, 100])  # blocks that divide the keys, that do not, one block
def test_attention_by_blocks_equals_softmax_attention(block_n):
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(5, 8, generator=g), 3 * torch.randn(48, 8, generator=g)  # large scores: the max matters
    v = torch.randn(48, 6, generator=g)
    expected = torch.softmax(q @ k.T / math.sqrt(8), dim=-1) @ v
    torch.testing.assert_close(attention_by_blocks(q, k, v, block_n), expected)


def test_attention_by_blocks_refuses_bad_blocks_and_shapes():
    q = torch.randn(4, 8)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="block_n"):
            attention_by_blocks(q, q, q, bad)
    with pytest.raises(ValueError, match="expected"):
        attention_by_blocks(q, torch.randn(4, 3), torch.randn(4, 8), 2)
