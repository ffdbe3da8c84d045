"""Look inside a model: the attention weights its heads compute (chapter 2 reads a trained previous-token head).

`model(ids)` returns only logits; `attention_weights` listens to one layer during a forward pass and
rebuilds the weights its heads used, from the very queries and keys the layer computed.
"""

import torch

from .attention import MultiHeadAttention, causal_mask


@torch.no_grad()
def attention_weights(model, ids: torch.Tensor, layer: int = 0) -> torch.Tensor:
    """Attention weights (B, n_heads, T, T) of block `layer`'s heads on token ids (B, T): the causal softmax of
    the scaled scores of the queries and keys the layer computed (after its QK-norm and RoPE, if any)."""
    if not isinstance(ids, torch.Tensor) or ids.ndim != 2 or ids.is_floating_point():
        raise ValueError(f"ids must be an integer tensor (B, T), got {getattr(ids, 'shape', type(ids).__name__)}")
    n_blocks = len(model.blocks)
    if isinstance(layer, bool) or not isinstance(layer, int) or not -n_blocks <= layer < n_blocks:
        raise ValueError(f"layer must be an integer in [0, {n_blocks}), got {layer!r}")
    attention = model.blocks[layer].attention.sublayer
    if not isinstance(attention, MultiHeadAttention) or attention.window is not None or attention.sinks is not None:
        raise ValueError(f"layer {layer} must be plain causal MultiHeadAttention (no window, no sinks), "
                         f"got {type(attention).__name__}")
    captured = []  # the layer's positions module returns the (rotated) queries and keys
    hook = attention.positions.register_forward_hook(lambda module, inputs, qk: captured.append(qk))
    was_training = model.training
    model.eval()
    try:
        model(ids)
    finally:
        hook.remove()
        model.train(was_training)
    q, k = captured[0]  # (B, n_heads, T, head_dim), (B, n_kv_heads, T, head_dim)
    k = k.repeat_interleave(attention.n_heads // attention.n_kv_heads, dim=1)  # (B, n_heads, T, head_dim)
    scale = attention.head_dim ** -0.5 if attention.scale is None else attention.scale
    scores = (q @ k.transpose(-2, -1)) * scale  # (B, n_heads, T, T)
    T = ids.shape[1]
    return scores.masked_fill(~causal_mask(T, device=scores.device), float("-inf")).softmax(dim=-1)
