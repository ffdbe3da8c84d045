"""Norm placements: each residual wrapper computes its formula, is chosen by name, and runs in a full model."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from llmfs.config import NORM_PLACEMENTS as PLACEMENT_NAMES
from llmfs.config import ConfigError, LayerSpec, ModelConfig
from llmfs.counting import count_parameters
from llmfs.model import Transformer
from llmfs.residual import NORM_PLACEMENTS, PostNorm, PostSublayerNorm, PreNorm, SandwichNorm

D = 16


class Sublayer(nn.Module):
    """A stand-in for attention or the FFN: tanh(W x + b) + scale, with a keyword argument to pass through."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(D, D)

    def forward(self, x, scale=0.0):
        return torch.tanh(self.linear(x)) + scale


def config(norm: str) -> ModelConfig:
    return ModelConfig(vocab_size=10, d_model=D, n_heads=2, n_layers=1, norm=norm, norm_eps=1e-5)


def wrapped(placement: str, norm: str) -> nn.Module:
    """The placement around a Sublayer, with every weight random so that swapped norms would show."""
    torch.manual_seed(0)
    module = NORM_PLACEMENTS[placement](config(norm), Sublayer())
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape))
    return module


def norm_fn(norm: str, module: nn.Module):
    """The norm `module` written with torch.nn.functional on its own weights."""
    if norm == "rmsnorm":
        return lambda x: F.rms_norm(x, (D,), module.weight, eps=1e-5)
    return lambda x: F.layer_norm(x, (D,), module.weight, module.bias, eps=1e-5)


def f(module: nn.Module):
    return lambda x: torch.tanh(F.linear(x, module.sublayer.linear.weight, module.sublayer.linear.bias))


FORMULAS = {  # the placement written out by hand
    "pre": lambda m, n: lambda x: x + f(m)(n(m.norm)(x)),
    "post": lambda m, n: lambda x: n(m.norm)(x + f(m)(x)),
    "post_sublayer": lambda m, n: lambda x: x + n(m.norm)(f(m)(x)),
    "sandwich": lambda m, n: lambda x: x + n(m.post_norm)(f(m)(n(m.norm)(x))),
}


def test_every_configurable_placement_has_a_module_and_a_formula():
    assert set(PLACEMENT_NAMES) == set(NORM_PLACEMENTS) == set(FORMULAS)


@pytest.mark.parametrize("norm", ["rmsnorm", "layernorm"])
@pytest.mark.parametrize("placement", sorted(FORMULAS))
def test_placement_computes_its_formula(placement, norm):
    module = wrapped(placement, norm)
    x = torch.randn(2, 5, D, generator=torch.Generator().manual_seed(1)) * 3
    expected = FORMULAS[placement](module, lambda m: norm_fn(norm, m))(x)
    torch.testing.assert_close(module(x), expected)


@pytest.mark.parametrize("placement", sorted(FORMULAS))
def test_keyword_arguments_reach_the_sublayer(placement):
    module = wrapped(placement, "rmsnorm")
    x = torch.randn(1, 3, D)
    assert not torch.allclose(module(x, scale=2.0), module(x))


def test_placements_are_the_expected_classes():
    assert NORM_PLACEMENTS == {"pre": PreNorm, "post": PostNorm, "post_sublayer": PostSublayerNorm,
                               "sandwich": SandwichNorm}


def test_post_norm_output_is_normalized_and_the_others_keep_the_stream():
    x = 10 * torch.randn(4, D)
    for placement in FORMULAS:
        module = NORM_PLACEMENTS[placement](config("rmsnorm"), Sublayer())
        rms = module(x).pow(2).mean(-1).sqrt()
        if placement == "post":
            torch.testing.assert_close(rms, torch.ones(4), rtol=1e-4, atol=1e-4)
        else:  # the residual stream passes through: |f(.)| <= 1 after tanh, the norm's output has RMS 1
            assert (rms > 5).all()


def test_post_sublayer_bounds_each_update():
    """x + norm(f(x)): with unit norm weights, whatever f does, the update has RMS 1."""
    module = NORM_PLACEMENTS["post_sublayer"](config("rmsnorm"), Sublayer())
    with torch.no_grad():
        module.sublayer.linear.weight.mul_(1000)
    x = torch.randn(3, D)
    update = module(x) - x
    torch.testing.assert_close(update.pow(2).mean(-1).sqrt(), torch.ones(3), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("bad", ["middle", "olmo", "Pre"])
def test_unknown_placement_is_a_clear_error(bad):
    with pytest.raises(ConfigError, match=rf"norm_placement='{bad}' is not allowed; choose one of \['post', "):
        LayerSpec(norm_placement=bad)
    with pytest.raises(ConfigError, match=rf"norm_placement='{bad}' is not allowed"):
        ModelConfig(norm_placement=bad)


def test_close_misspelling_gets_a_suggestion():
    with pytest.raises(ConfigError, match="Did you mean 'sandwich'"):
        LayerSpec(norm_placement="sandwhich")


@pytest.mark.parametrize("placement", sorted(FORMULAS))
def test_every_placement_runs_in_a_model_with_its_cache(placement):
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=50, context_length=32, d_model=32, n_heads=4, n_layers=2, norm="rmsnorm",
                      positions="rope", ffn="swiglu", d_ff=48, qk_norm="full", norm_placement=placement)
    model = Transformer(cfg).eval()
    idx = torch.randint(0, 50, (2, 10))
    cache = model.new_cache(batch_size=2)
    with torch.no_grad():
        pieces = [model(idx[:, :6], cache=cache)] + [model(idx[:, t:t + 1], cache=cache) for t in range(6, 10)]
        torch.testing.assert_close(torch.cat(pieces, dim=1), model(idx), atol=1e-5, rtol=1e-5)


def test_sandwich_adds_one_norm_per_sublayer():
    base = dict(vocab_size=50, d_model=32, n_heads=4, n_layers=3, norm="rmsnorm")
    counts = {p: count_parameters(ModelConfig(**base, norm_placement=p)).total for p in FORMULAS}
    assert counts["pre"] == counts["post"] == counts["post_sublayer"]
    assert counts["sandwich"] - counts["pre"] == 3 * 2 * 32  # 3 layers, 2 sublayers, one extra weight of 32


def test_placements_can_differ_by_layer():
    layers = tuple(LayerSpec(norm_placement=p) for p in ("pre", "post_sublayer", "sandwich"))
    model = Transformer(ModelConfig(vocab_size=50, d_model=32, n_heads=4, n_layers=3, layers=layers))
    assert [type(block.ffn) for block in model.blocks] == [PreNorm, PostSublayerNorm, SandwichNorm]
