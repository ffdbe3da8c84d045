"""Residual connections and where their norm sits (chapter 7): each wraps one sublayer (attention or FFN).

Four placements, one module each, chosen by the `norm_placement` name of a layer:

    "pre"            x + f(norm(x))                    GPT-2, Llama, Qwen and most LLMs
    "post"           norm(x + f(x))                    the original Transformer
    "post_sublayer"  x + norm(f(x))                    OLMo 2: the norm closes the branch, the stream stays raw
    "sandwich"       x + norm_post(f(norm_pre(x)))     Gemma 2 and 3: a norm on each side of the sublayer
"""

import torch.nn as nn

from .norms import make_norm


class Residual(nn.Module):
    """One sublayer f (attention or FFN), a norm, dropout on the branch; each subclass places the norm."""

    def __init__(self, config, sublayer: nn.Module):
        super().__init__()
        self.sublayer = sublayer
        self.norm = make_norm(config)
        self.dropout = nn.Dropout(config.dropout)


class PreNorm(Residual):
    """x + f(norm(x)): normalize the sublayer's input (GPT-2, Llama and most LLMs)."""

    def forward(self, x, **kwargs):
        return x + self.dropout(self.sublayer(self.norm(x), **kwargs))


class PostNorm(Residual):
    """norm(x + f(x)): normalize after the residual sum (the original Transformer)."""

    def forward(self, x, **kwargs):
        return self.norm(x + self.dropout(self.sublayer(x, **kwargs)))


class PostSublayerNorm(Residual):
    """x + norm(f(x)): normalize the sublayer's output inside the residual branch (OLMo 2).

    The sublayer reads the raw residual stream; what it adds back is normalized, so no branch can
    write an update larger than its norm's weights allow.
    """

    def forward(self, x, **kwargs):
        return x + self.dropout(self.norm(self.sublayer(x, **kwargs)))


class SandwichNorm(Residual):
    """x + norm_post(f(norm_pre(x))): normalize both the sublayer's input and its output (Gemma 2 and 3).

    `norm` is the one before the sublayer; `post_norm` the one after.
    """

    def __init__(self, config, sublayer: nn.Module):
        super().__init__(config, sublayer)
        self.post_norm = make_norm(config)

    def forward(self, x, **kwargs):
        return x + self.dropout(self.post_norm(self.sublayer(self.norm(x), **kwargs)))


NORM_PLACEMENTS = {"pre": PreNorm, "post": PostNorm, "post_sublayer": PostSublayerNorm, "sandwich": SandwichNorm}
