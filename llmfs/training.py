"""A small, seeded training loop for any model that maps token ids (B, T) to logits (B, T, V).

It is the loop every chapter reuses: AdamW, gradient clipping, a loss curve in a `History`,
and a validation loss every `eval_every` steps; optionally PaLM's z-loss (chapter 7).
"""

import itertools
import numbers
import random
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm


def set_seed(seed):
    """Seed Python's, NumPy's and PyTorch's random generators, so a run can be repeated exactly."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def lm_loss(logits, targets):
    """Mean cross entropy of next-token logits (B, T, V) against target ids (B, T)."""
    if logits.ndim != 3 or targets.shape != logits.shape[:2]:
        raise ValueError(
            f"lm_loss expects logits (B, T, V) and targets (B, T), "
            f"got logits {tuple(logits.shape)} and targets {tuple(targets.shape)}"
        )
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())  # (B*T, V) vs (B*T,)


def auxiliary_loss(model):
    """The sum of the extra losses modules recorded in their last forward (`module.auxiliary_loss`, e.g. an MoE
    router's load-balancing loss, chapter 6), or 0.0 when none did."""
    losses = [m.auxiliary_loss for m in model.modules() if getattr(m, "auxiliary_loss", None) is not None]
    return sum(losses) if losses else 0.0


def after_optimizer_step(model):
    """Let modules that keep state outside the gradient update it (`module.after_optimizer_step()`, e.g. DeepSeek
    V3's expert bias, chapter 6)."""
    for module in model.modules():
        if hasattr(module, "after_optimizer_step"):
            module.after_optimizer_step()


def z_loss(logits):
    """Mean of log(Z)² over positions, Z = Σ exp(logits) (PaLM's auxiliary loss); logits (..., V).

    Added to the loss with a small weight (PaLM: 1e-4), it pulls log Z towards 0, so the softmax's
    normalizer cannot drift to huge values that round badly in low precision.
    """
    if logits.ndim < 1 or logits.shape[-1] == 0:
        raise ValueError(f"z_loss expects logits (..., V) with V >= 1, got shape {tuple(logits.shape)}")
    return torch.logsumexp(logits.float(), dim=-1).pow(2).mean()


@torch.no_grad()
def evaluate(model, loader, max_batches=None, device="cpu"):
    """Mean loss per token over (the first `max_batches` batches of) `loader`, in eval mode.

    The model is put back in the mode it was in (train or eval) afterwards.
    """
    if max_batches is not None:
        _check_positive_int("max_batches", max_batches)
    was_training = model.training
    model.eval()
    try:
        total_loss, total_tokens = 0.0, 0
        for inputs, targets in itertools.islice(loader, max_batches):
            inputs, targets = inputs.to(device), targets.to(device)  # (B, T), (B, T)
            loss = lm_loss(model(inputs), targets)
            total_loss += loss.item() * targets.numel()  # weight by tokens: a last batch may be short
            total_tokens += targets.numel()
    finally:
        model.train(was_training)
    if total_tokens == 0:
        raise ValueError("evaluate got a loader that yields no batches")
    return total_loss / total_tokens


@dataclass
class History:
    """What `train` measured; `steps`, `train_loss`, `val_loss`, `tokens_seen` have one entry per eval point.

    train_loss: mean training loss over the steps since the previous eval point (in train mode).
    val_loss: `evaluate` on the validation loader; empty when training had no validation loader.
    step_loss: the training loss of every step, step 1 first.
    """

    steps: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    tokens_seen: list = field(default_factory=list)
    step_loss: list = field(default_factory=list, repr=False)  # long: left out of the printed History


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _check_number(name, value, low, allow_low):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    if not ok or not (value >= low if allow_low else value > low):
        bound = f">= {low}" if allow_low else f"> {low}"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")


def _batches_forever(loader):
    """Yield batches from `loader`, starting a new epoch (a new shuffle) whenever one runs out."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("train_loader yields no batches")


def _param_groups(model, weight_decay):
    """Decay matrices (weights, embeddings) but not vectors (biases, norm gains), as GPT-2 does."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]


def train(
    model,
    train_loader,
    val_loader=None,
    *,
    steps,
    lr=3e-4,
    weight_decay=0.1,
    eval_every=None,
    eval_batches=20,
    device="cpu",
    seed=0,
    grad_clip=1.0,
    z_loss_weight=0.0,
    progress=True,
):
    """Train `model` for `steps` AdamW steps on (B, T) batches of (input ids, target ids).

    Every `eval_every` steps (default: steps // 10) and after the last step, the mean recent
    training loss and the validation loss over `eval_batches` batches (None: all) are recorded.
    `seed` seeds dropout and any other randomness inside the loop; build the model and the loaders
    after `set_seed` too, and two runs give the same losses. `grad_clip=None` turns clipping off.
    `z_loss_weight` > 0 adds that weight times `z_loss(logits)` to the loss that is minimized (PaLM
    uses 1e-4); the losses recorded in the History stay the plain cross entropy.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _check_positive_int("steps", steps)
    eval_every = max(1, steps // 10) if eval_every is None else eval_every
    _check_positive_int("eval_every", eval_every)
    if eval_batches is not None:
        _check_positive_int("eval_batches", eval_batches)
    _check_number("lr", lr, 0, allow_low=False)
    _check_number("weight_decay", weight_decay, 0, allow_low=True)
    _check_number("z_loss_weight", z_loss_weight, 0, allow_low=True)
    if grad_clip is not None:
        _check_number("grad_clip", grad_clip, 0, allow_low=False)

    set_seed(seed)
    model.to(device)
    model.train()
    optimizer = torch.optim.AdamW(_param_groups(model, weight_decay), lr=lr)
    history = History()
    batches = _batches_forever(train_loader)
    tokens_seen, last_eval_step = 0, 0
    bar = tqdm(range(1, steps + 1), desc="train", disable=not progress)
    for step in bar:
        inputs, targets = next(batches)
        inputs, targets = inputs.to(device), targets.to(device)  # (B, T), (B, T)
        logits = model(inputs)  # (B, T, V)
        loss = lm_loss(logits, targets)
        objective = loss + z_loss_weight * z_loss(logits) if z_loss_weight else loss
        optimizer.zero_grad(set_to_none=True)
        (objective + auxiliary_loss(model)).backward()  # the History records the language-modelling loss alone
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        after_optimizer_step(model)

        tokens_seen += inputs.numel()
        history.step_loss.append(loss.item())
        if step % eval_every == 0 or step == steps:
            recent = history.step_loss[last_eval_step:]  # steps last_eval_step + 1 ... step
            last_eval_step = step
            history.steps.append(step)
            history.train_loss.append(sum(recent) / len(recent))
            history.tokens_seen.append(tokens_seen)
            if val_loader is not None:
                history.val_loss.append(evaluate(model, val_loader, eval_batches, device))
        postfix = {"loss": f"{history.step_loss[-1]:.3f}"}
        if history.val_loss:
            postfix["val"] = f"{history.val_loss[-1]:.3f}"
        bar.set_postfix(postfix)
    return history
