"""Residual connections and where their norm sits (chapter 7): each wraps one sublayer (attention or FFN)."""

import torch.nn as nn

from .norms import make_norm


class PreNorm(nn.Module):
    """x + f(norm(x)): normalize the sublayer's input (GPT-2, Llama and most LLMs)."""

    def __init__(self, config, sublayer: nn.Module):
        super().__init__()
        self.norm = make_norm(config)
        self.sublayer = sublayer
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x, **kwargs):
        return x + self.dropout(self.sublayer(self.norm(x), **kwargs))


class PostNorm(nn.Module):
    """norm(x + f(x)): normalize after the residual sum (the original Transformer)."""

    def __init__(self, config, sublayer: nn.Module):
        super().__init__()
        self.sublayer = sublayer
        self.norm = make_norm(config)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x, **kwargs):
        return self.norm(x + self.dropout(self.sublayer(x, **kwargs)))


NORM_PLACEMENTS = {"pre": PreNorm, "post": PostNorm}
