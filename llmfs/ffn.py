"""Position-wise feed-forward networks: GPT-2's GELU MLP and the gated GLU variants (Shazeer, 2020).

`MLP` holds one layer's settings (width, activation, gated or not, biases); `PlainMLP` and `GatedMLP` are
the modules they build. Chapter 6 explains them and adds mixtures of experts.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

from .settings import Settings, boolean, choice, positive_int

ACTIVATIONS = {"gelu": partial(F.gelu, approximate="tanh"), "silu": F.silu}

# Shorthand names of the common feed-forward networks (ModelConfig(ffn=...)) -> MLP settings.
FFN_KINDS = {
    "gelu_mlp": dict(activation="gelu", gated=False),  # GPT-2
    "swiglu": dict(activation="silu", gated=True),  # Llama, Qwen, OLMo, SmolLM
    "geglu": dict(activation="gelu", gated=True),  # Gemma
}


@dataclass(frozen=True)
class MLP(Settings):
    """Settings of a dense feed-forward network: hidden width d_ff (None: 4 * d_model), the activation
    ("gelu", tanh-approximated, or "silu"), gated (a GLU: act(gate(x)) * up(x)) or not, and biases."""

    d_ff: int | None = None
    activation: str = "silu"
    gated: bool = True
    bias: bool = False

    derivable = ("d_ff",)

    def derived(self, d_model: int) -> dict:
        return {"d_ff": 4 * d_model}

    def check(self, d_model: int) -> None:
        positive_int("d_ff", self.d_ff)
        choice("activation", self.activation, tuple(ACTIVATIONS))
        boolean("gated", self.gated)
        boolean("mlp_bias", self.bias)

    @property
    def kind(self) -> str:
        """The shorthand name of these settings ("swiglu", "geglu", "gelu_mlp"), or "custom"."""
        return next((k for k, v in FFN_KINDS.items() if v == dict(activation=self.activation, gated=self.gated)),
                    "custom")

    def build(self, config) -> nn.Module:
        return (GatedMLP if self.gated else PlainMLP)(config.d_model, self)

    def tiny(self) -> MLP:
        return MLP(96 if self.gated else 128, self.activation, self.gated, self.bias)

    def __str__(self) -> str:
        name = {"swiglu": "SwiGLU", "geglu": "GeGLU", "gelu_mlp": "GELU-MLP"}.get(
            self.kind, f"{'gated ' if self.gated else ''}{self.activation}-MLP")
        return f"{name}({self.d_ff})"


class PlainMLP(nn.Module):
    """d_model -> d_ff -> activation -> d_model, as in GPT-2 (GELU, tanh approximation)."""

    def __init__(self, d_model: int, settings: MLP):
        super().__init__()
        self.fc_in = nn.Linear(d_model, settings.d_ff, bias=settings.bias)
        self.fc_out = nn.Linear(settings.d_ff, d_model, bias=settings.bias)
        self.activation = ACTIVATIONS[settings.activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d_model)
        return self.fc_out(self.activation(self.fc_in(x)))


class GatedMLP(nn.Module):
    """down(act(gate(x)) * up(x)): one branch decides how much of the other passes.

    SiLU gate: SwiGLU (Llama, Qwen, OLMo, SmolLM); GELU gate: GeGLU (Gemma).
    """

    def __init__(self, d_model: int, settings: MLP):
        super().__init__()
        self.gate = nn.Linear(d_model, settings.d_ff, bias=settings.bias)
        self.up = nn.Linear(d_model, settings.d_ff, bias=settings.bias)
        self.down = nn.Linear(settings.d_ff, d_model, bias=settings.bias)
        self.activation = ACTIVATIONS[settings.activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d_model)
        return self.down(self.activation(self.gate(x)) * self.up(x))
