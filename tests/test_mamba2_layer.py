"""llmfs' Mamba-2 mixer (gated linear attention with a scalar decay, conv, gated RMSNorm) against transformers'
`Mamba2Mixer` on its pure-torch CPU path: same weights, fp32, whole sequence and token by token."""

import pytest
import torch

from llmfs.linear_attention import Mamba2Mixer
from llmfs.settings import ConfigError

transformers = pytest.importorskip("transformers")


def _pair():
    from transformers import Mamba2Config
    from transformers.models.mamba2.modeling_mamba2 import Mamba2Mixer as TheirMixer

    torch.manual_seed(0)
    config = Mamba2Config(hidden_size=32, num_heads=8, head_dim=8, state_size=16, n_groups=2, conv_kernel=4,
                          expand=2, chunk_size=16, layer_norm_epsilon=1e-5, num_hidden_layers=1)
    theirs = TheirMixer(config, layer_idx=0).eval()
    with torch.no_grad():  # random everything, so a weight loaded into the wrong place shows
        for p in theirs.parameters():
            p.copy_(torch.randn(p.shape) * (0.3 if p.ndim > 1 else 0.5))
    ours = Mamba2Mixer(32, n_heads=8, head_dim=8, state_size=16, n_groups=2, conv_size=4, chunk_size=16, eps=1e-5)
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours.eval()


def test_whole_sequence_matches_transformers_mamba2_mixer():
    theirs, ours = _pair()
    x = torch.randn(2, 50, 32, generator=torch.Generator().manual_seed(1))  # longer than one chunk (16)
    with torch.no_grad():
        diff = (theirs(x) - ours(x)).abs().max().item()
    assert diff <= 1e-4, diff


def test_token_by_token_matches_the_whole_sequence():
    theirs, ours = _pair()
    x = torch.randn(2, 40, 32, generator=torch.Generator().manual_seed(2))
    state = ours.new_state(2)
    with torch.no_grad():
        expected = theirs(x)
        prefix = ours(x[:, :20], state=state)
        steps = [ours(x[:, t:t + 1], state=state) for t in range(20, 40)]
    diff = (torch.cat([prefix] + steps, dim=1) - expected).abs().max().item()
    assert diff <= 1e-4, diff


def test_bad_mamba2_settings_name_the_field():
    with pytest.raises(ConfigError, match="n_groups=3"):
        Mamba2Mixer(32, n_heads=8, head_dim=8, state_size=16, n_groups=3)
    with pytest.raises(ConfigError, match="conv_size"):
        Mamba2Mixer(32, n_heads=8, head_dim=8, state_size=16, conv_size=0)
