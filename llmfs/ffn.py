"""Position-wise feed-forward networks: GPT-2's GELU MLP and the gated GLU variants (Shazeer, 2020)."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class GeluMLP(nn.Module):
    """d_model -> d_ff -> GELU -> d_model, as in GPT-2 (tanh approximation of GELU)."""

    def __init__(self, config):
        super().__init__()
        self.fc_in = nn.Linear(config.d_model, config.d_ff, bias=config.mlp_bias)
        self.fc_out = nn.Linear(config.d_ff, config.d_model, bias=config.mlp_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d_model)
        return self.fc_out(F.gelu(self.fc_in(x), approximate="tanh"))


class GatedMLP(nn.Module):
    """down(act(gate(x)) * up(x)): one branch decides how much of the other passes.

    Subclasses choose `activation`.
    """

    def __init__(self, config):
        super().__init__()
        self.gate = nn.Linear(config.d_model, config.d_ff, bias=config.mlp_bias)
        self.up = nn.Linear(config.d_model, config.d_ff, bias=config.mlp_bias)
        self.down = nn.Linear(config.d_ff, config.d_model, bias=config.mlp_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d_model)
        return self.down(self.activation(self.gate(x)) * self.up(x))


class SwiGLU(GatedMLP):
    """Gated MLP with a SiLU (swish) gate: Llama, Qwen, OLMo, SmolLM."""

    activation = staticmethod(F.silu)


class GeGLU(GatedMLP):
    """Gated MLP with a GELU (tanh) gate: Gemma."""

    activation = staticmethod(lambda x: F.gelu(x, approximate="tanh"))


FFNS = {"gelu_mlp": GeluMLP, "swiglu": SwiGLU, "geglu": GeGLU}
