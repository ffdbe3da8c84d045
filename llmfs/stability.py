"""Training that records how attention behaves as it goes unstable (chapter 7's learning-rate sweeps).

At too high a learning rate the attention logits of a Transformer can grow without bound and its heads
collapse onto single tokens (entropy near 0) (Wortsman et al. 2023); QK-norm prevents it. `train_recording`
trains a small language model and logs both, every few steps.
"""

import math

import torch

from .model import Transformer
from .training import evaluate, lm_loss, set_seed


def attention_stats(q, k):
    """Largest |logit| and, per head, the mean entropy (nats) of the causal attention of q, k (B, heads, T, d)."""
    T = q.shape[-2]
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, heads, T, T)
    scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool, device=q.device).tril(), float("-inf"))
    weights = scores.softmax(-1)
    entropy = -(weights * weights.clamp_min(1e-30).log()).sum(-1).mean((0, 2))  # (heads,)
    return scores.nan_to_num(0.0, neginf=0.0).abs().max().item(), entropy


def train_recording(config, lr, seed, train_ids, val_windows, *, steps, context, batch_size, record_every=10,
                    device="cpu"):
    """Train `Transformer(config)` from `seed` on random windows of `context` + 1 tokens of `train_ids` (1-D),
    `batch_size` a step: AdamW at `lr` after a linear warm-up over the first tenth of the steps, no clipping.

    Every `record_every` steps (and at step 1) it logs the largest attention logit and the lowest mean
    attention entropy of any head; at the end, the loss on `val_windows` (N, context + 1), or ln(vocab) if the
    run diverged. Returns {"step", "max_logit", "min_entropy": lists, "val_loss": float}.
    """
    for name, value in (("steps", steps), ("context", context), ("batch_size", batch_size),
                        ("record_every", record_every)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if steps < 10:
        raise ValueError(f"steps must be at least 10 (the warm-up is a tenth of them), got {steps}")
    if train_ids.ndim != 1 or len(train_ids) < context + 2:
        raise ValueError(f"train_ids must be 1-D and longer than context + 1 = {context + 1} tokens")
    set_seed(seed)
    model = Transformer(config).to(device)
    # The fused AdamW does a step in one kernel call instead of several per parameter (a few per cent of a run).
    fused = torch.device(device).type in ("cpu", "cuda") or None
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.0, fused=fused)
    warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / (steps // 10)))
    sampler = torch.Generator().manual_seed(seed)
    stats, log = [], {"step": [], "max_logit": [], "min_entropy": []}
    recording = False
    hooks = [block.attention.sublayer.positions.register_forward_hook(  # RoPE returns the rotated q, k
                 lambda module, inputs, qk: stats.append(attention_stats(*qk)) if recording else None)
             for block in model.blocks]
    try:
        for step in range(1, steps + 1):
            recording = step % record_every == 0 or step == 1
            starts = torch.randint(0, len(train_ids) - context - 1, (batch_size,), generator=sampler)
            windows = torch.stack([train_ids[s:s + context + 1] for s in starts.tolist()]).to(device)
            loss = lm_loss(model(windows[:, :-1]), windows[:, 1:])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            warmup.step()
            if recording:
                log["step"].append(step)
                log["max_logit"].append(max(s[0] for s in stats))
                log["min_entropy"].append(min(s[1].min().item() for s in stats))
                stats.clear()
    finally:
        for hook in hooks:
            hook.remove()
    val_loss = evaluate(model, [(val_windows[:, :-1], val_windows[:, 1:])], device=device)
    log["val_loss"] = val_loss if math.isfinite(val_loss) else math.log(config.vocab_size)  # diverged: chance
    return log
