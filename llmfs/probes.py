"""Look inside a model: the attention weights its heads compute (chapter 2 reads a trained previous-token head;
chapter 5 measures how much weight goes to the first token and to learned sinks).

`model(ids)` returns only logits; `attention_weights` listens to one layer during a forward pass and recomputes
the weights its heads used from that layer's own input, projections, positions and mask.
"""

import math

import torch

from .attention import MultiHeadAttention, softmax_with_sinks, window_mask


@torch.no_grad()
def attention_weights(model, ids: torch.Tensor, layer: int = 0) -> torch.Tensor:
    """Attention weights (B, n_heads, T, T) of block `layer`'s heads on token ids (B, T): the softmax of the
    scaled scores of its queries and keys (after its QK-norm and RoPE, if any) under its mask (causal, window,
    kept sink tokens). With learned sinks a row sums to less than 1: the rest is the sink's."""
    if not isinstance(ids, torch.Tensor) or ids.ndim != 2 or ids.is_floating_point():
        raise ValueError(f"ids must be an integer tensor (B, T), got {getattr(ids, 'shape', type(ids).__name__)}")
    n_blocks = len(model.blocks)
    if isinstance(layer, bool) or not isinstance(layer, int) or not -n_blocks <= layer < n_blocks:
        raise ValueError(f"layer must be an integer in [0, {n_blocks}), got {layer!r}")
    attention = model.blocks[layer].attention.sublayer
    if not isinstance(attention, MultiHeadAttention):
        raise ValueError(f"layer {layer} must be MultiHeadAttention, got {type(attention).__name__}")
    captured = []  # the layer's input (B, T, d_model) and the positions of its tokens
    hook = attention.register_forward_pre_hook(
        lambda module, args, kwargs: captured.append((args[0], kwargs["positions"])), with_kwargs=True)
    was_training = model.training
    model.eval()
    try:
        model(ids)
    finally:
        hook.remove()
        model.train(was_training)
    x, positions = captured[0]
    B, T, _ = x.shape
    q = attention.q_norm(attention.q_proj(x)).view(B, T, attention.n_heads, attention.head_dim).transpose(1, 2)
    k = attention.k_norm(attention.k_proj(x)).view(B, T, attention.n_kv_heads, attention.head_dim).transpose(1, 2)
    q, k = attention.positions(q, k, positions)  # (B, n_heads, T, head_dim), (B, n_kv_heads, T, head_dim)
    k = k.repeat_interleave(attention.n_heads // attention.n_kv_heads, dim=1)  # (B, n_heads, T, head_dim)
    scores = (q @ k.transpose(-2, -1)) * attention.softmax_scale  # (B, n_heads, T, T)
    mask = window_mask(positions, positions, attention.window, attention.sink_tokens)
    scores = scores.masked_fill(~mask, -math.inf)
    return scores.softmax(dim=-1) if attention.sinks is None else softmax_with_sinks(scores, attention.sinks)
