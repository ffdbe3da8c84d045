"""Mixture of experts: many small feed-forward networks, a router that sends each token to a few of them.

`MoE` holds one layer's settings (experts, top-k, expert width, shared experts, the router's rule and its
load balancing); `MixtureOfExperts` is the module they build. Routers: softmax top-k, with or without
renormalising the k weights (Mixtral; Qwen3's norm_topk_prob), and DeepSeek V3's sigmoid scores with a
selection-only bias, group-limited routing and a routed scaling factor. Chapter 6 explains them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .ffn import ACTIVATIONS, MLP, GatedMLP, PlainMLP
from .settings import ConfigError, Settings, boolean, choice, number, positive_int

ROUTERS = ("softmax", "sigmoid")


@dataclass(frozen=True)
class MoE(Settings):
    """Settings of a mixture-of-experts feed-forward layer.

    n_experts routed experts of hidden width d_expert (None: 4 * d_model // top_k, so the active width
    matches GPT-2's MLP), top_k of them per token, plus n_shared always-on experts of the same width.
    router: "softmax" (probabilities over all experts) or "sigmoid" (independent scores, DeepSeek V3);
    norm_topk: divide the k chosen weights by their sum; routed_scaling: multiply them by this.
    n_group / topk_group: experts split into n_group groups, only the best topk_group groups may be chosen.
    Balancing (training only): aux_loss_weight (Switch Transformer's loss), z_loss_weight (router z-loss),
    bias_update_rate (DeepSeek V3's auxiliary-loss-free bias); capacity_factor (None: no limit) caps each
    expert at ceil(capacity_factor * tokens * top_k / n_experts) assignments and drops the rest.
    gpt-oss: router_bias / expert_bias (linear layers with biases), swiglu_limit (None: plain gate; else gpt-oss's clamped SwiGLU: gate clamped above at the
    limit, up to +-limit, out = (up + 1) * gate * sigmoid(swiglu_alpha * gate)).
    shared_gate: scale the shared experts' output by sigmoid(w . x), one learned scalar per token (Qwen3-Next).
    """

    n_experts: int = 8
    top_k: int = 2
    d_expert: int | None = None
    n_shared: int = 0
    router: str = "softmax"
    norm_topk: bool = True
    n_group: int = 1
    topk_group: int = 1
    routed_scaling: float = 1.0
    activation: str = "silu"
    gated: bool = True
    capacity_factor: float | None = None
    aux_loss_weight: float = 0.0
    z_loss_weight: float = 0.0
    bias_update_rate: float = 0.0
    router_bias: bool = False
    expert_bias: bool = False
    swiglu_limit: float | None = None
    swiglu_alpha: float = 1.702
    shared_gate: bool = False

    derivable = ("d_expert",)

    def derived(self, d_model: int) -> dict:
        if isinstance(self.top_k, int) and not isinstance(self.top_k, bool) and self.top_k >= 1:
            return {"d_expert": max(1, 4 * d_model // self.top_k)}
        return {}

    def check(self, d_model: int) -> None:
        for field in ("n_experts", "top_k", "d_expert", "n_group", "topk_group"):
            positive_int(field, getattr(self, field))
        if not isinstance(self.n_shared, int) or isinstance(self.n_shared, bool) or self.n_shared < 0:
            raise ConfigError(f"n_shared must be an integer >= 0, got {self.n_shared!r}.")
        if self.top_k > self.n_experts:
            raise ConfigError(f"top_k={self.top_k} must be at most n_experts={self.n_experts}.")
        if self.n_experts % self.n_group:
            raise ConfigError(f"n_group={self.n_group} must divide n_experts={self.n_experts} into equal groups.")
        if self.topk_group > self.n_group:
            raise ConfigError(f"topk_group={self.topk_group} must be at most n_group={self.n_group}.")
        if self.top_k > self.topk_group * (self.n_experts // self.n_group):
            raise ConfigError(f"top_k={self.top_k} is more than the {self.topk_group * (self.n_experts // self.n_group)}"
                              f" experts in topk_group={self.topk_group} groups of {self.n_experts // self.n_group}.")
        choice("router", self.router, ROUTERS)
        boolean("norm_topk", self.norm_topk)
        number("routed_scaling", self.routed_scaling, low=0)
        choice("activation", self.activation, tuple(ACTIVATIONS))
        boolean("gated", self.gated)
        if self.capacity_factor is not None:
            number("capacity_factor", self.capacity_factor, low=0)
        for field in ("aux_loss_weight", "z_loss_weight", "bias_update_rate"):
            number(field, getattr(self, field), low=0, low_open=False)
        for field in ("router_bias", "expert_bias"):
            boolean(field, getattr(self, field))
        if self.swiglu_limit is not None:
            number("swiglu_limit", self.swiglu_limit, low=0)
            if not self.gated:
                raise ConfigError("swiglu_limit needs gated=True (it clamps a gated expert's gate and up).")
        number("swiglu_alpha", self.swiglu_alpha, low=0)
        boolean("shared_gate", self.shared_gate)
        if self.shared_gate and not self.n_shared:
            raise ConfigError("shared_gate=True scales the shared experts' output by a sigmoid gate, so it needs "
                              f"n_shared >= 1, got n_shared={self.n_shared!r}.")

    def build(self, config) -> nn.Module:
        return MixtureOfExperts(config.d_model, self)

    def tiny(self) -> MoE:
        n_group = math.gcd(self.n_group, 4)
        return MoE(n_experts=8, top_k=min(self.top_k, 2), d_expert=32, n_shared=min(self.n_shared, 1),
                   router=self.router, norm_topk=self.norm_topk, n_group=n_group,
                   topk_group=max(1, self.topk_group * n_group // self.n_group),
                   routed_scaling=self.routed_scaling, activation=self.activation, gated=self.gated,
                   capacity_factor=self.capacity_factor, aux_loss_weight=self.aux_loss_weight,
                   z_loss_weight=self.z_loss_weight, bias_update_rate=self.bias_update_rate,
                   router_bias=self.router_bias, expert_bias=self.expert_bias,
                   swiglu_limit=self.swiglu_limit,
                   swiglu_alpha=self.swiglu_alpha,
                   shared_gate=self.shared_gate)

    def __str__(self) -> str:
        shared = f" + {self.n_shared} shared" if self.n_shared else ""
        groups = f", {self.topk_group} of {self.n_group} groups" if self.n_group > 1 else ""
        return f"MoE({self.n_experts} × {self.d_expert}, top-{self.top_k}{shared}, {self.router}{groups})"


class Experts(nn.Module):
    """n_experts feed-forward networks stored as stacked weights, so one batched matmul runs them all.

    w_in (E, d_model, 2 * d_expert) holds each expert's [gate | up] (or just up when not gated);
    w_out (E, d_expert, d_model) its down projection.
    """

    def __init__(self, d_model: int, settings: MoE):
        super().__init__()
        s = settings
        width = (2 if s.gated else 1) * s.d_expert
        self.w_in = nn.Parameter(torch.randn(s.n_experts, d_model, width) * 0.02)
        self.w_out = nn.Parameter(torch.randn(s.n_experts, s.d_expert, d_model) * 0.02)
        self.b_in = nn.Parameter(torch.zeros(s.n_experts, width)) if s.expert_bias else None  # (E, width)
        self.b_out = nn.Parameter(torch.zeros(s.n_experts, d_model)) if s.expert_bias else None  # (E, d_model)
        self.activation = ACTIVATIONS[s.activation]
        self.gated = s.gated
        self.limit, self.alpha = s.swiglu_limit, s.swiglu_alpha
        self.batched = None  # the padded one-bmm dispatch: None = on any device but the CPU

    def hidden(self, h: torch.Tensor) -> torch.Tensor:  # (..., 2 * d_expert) -> (..., d_expert)
        if not self.gated:
            return self.activation(h)
        gate, up = h.chunk(2, dim=-1)
        if self.limit is not None:  # gpt-oss's clamped SwiGLU
            gate, up = gate.clamp(max=self.limit), up.clamp(-self.limit, self.limit)
            return (up + 1) * gate * torch.sigmoid(self.alpha * gate)
        return self.activation(gate) * up

    def one(self, e: int, x: torch.Tensor) -> torch.Tensor:
        """Expert e on tokens x (n, d_model) -> (n, d_model)."""
        h = x @ self.w_in[e]
        if self.b_in is not None:
            h = h + self.b_in[e]
        out = self.hidden(h) @ self.w_out[e]
        return out if self.b_out is None else out + self.b_out[e]

    def sorted(self, x: torch.Tensor, token: torch.Tensor, weight: torch.Tensor, counts: list[int]) -> torch.Tensor:
        """Tokens x (N, d_model); (token, weight) pairs (S,) sorted by expert, counts[e] of them for expert e ->
        the weighted sum of each token's experts (N, d_model).

        On the CPU each expert in turn gathers its run of tokens, runs, and adds back: its rows stay in cache
        between the two matmuls, which beats one big gather over all S rows. On a GPU (or with `batched` set True),
        when loads are even, rows are padded into an (E, max count, d_model) block and all experts run in one bmm.
        """
        out = torch.zeros_like(x)
        batched = x.device.type != "cpu" if self.batched is None else self.batched
        if batched and len(counts) * max(counts, default=0) <= 2 * token.numel():
            return out.index_add_(0, token, self._padded(x[token], counts) * weight[:, None])
        start = 0
        for e, n in enumerate(counts):
            if n:
                rows = token[start:start + n]
                h = x.index_select(0, rows) @ self.w_in[e]  # (n, width)
                if self.b_in is not None:
                    h = h + self.b_in[e]
                part = weight[start:start + n, None]  # (n, 1): the router's weight, applied before w_out
                y = (self.hidden(h) * part) @ self.w_out[e]  # (n, d_model)
                out.index_add_(0, rows, y if self.b_out is None else y + part * self.b_out[e])
            start += n
        return out

    def _padded(self, xs: torch.Tensor, counts: list[int]) -> torch.Tensor:
        """Rows xs (S, d_model) sorted by expert -> each through its expert, all experts in one bmm (S, d_model)."""
        E, capacity, S = len(counts), max(counts), xs.shape[0]
        expert_of_row = torch.repeat_interleave(torch.arange(E, device=xs.device),
                                                torch.tensor(counts, device=xs.device))
        starts = torch.tensor([0] + counts[:-1], device=xs.device).cumsum(0)
        slot = torch.arange(S, device=xs.device) - starts[expert_of_row]  # row's place in its expert's block
        block = xs.new_zeros(E, capacity, xs.shape[1])
        block[expert_of_row, slot] = xs
        h = torch.bmm(block, self.w_in)  # (E, capacity, width)
        if self.b_in is not None:
            h = h + self.b_in[:, None]
        out = torch.bmm(self.hidden(h), self.w_out)  # (E, capacity, d_model)
        if self.b_out is not None:
            out = out + self.b_out[:, None]
        return out[expert_of_row, slot]


class MixtureOfExperts(nn.Module):
    """Route each token to top_k of n_experts feed-forward networks and add their weighted outputs,
    plus the shared experts' output.

    `dispatch` = "sorted" (default: sort token-expert pairs by expert once, run each expert on its run, add back) or
    "loop" (the textbook loop over experts); both give the same result. In training, `auxiliary_loss`
    holds the balancing losses of the last forward (added to the loss by `llmfs.training.train`), and
    `after_optimizer_step()` applies DeepSeek V3's bias update. `load` counts each expert's assignments in
    the last forward.
    """

    def __init__(self, d_model: int, settings: MoE):
        super().__init__()
        self.settings = s = settings.resolved(d_model)  # built directly too, bad settings name their field
        self.router = nn.Linear(d_model, s.n_experts, bias=s.router_bias)
        self.register_buffer("selection_bias", torch.zeros(s.n_experts))  # DeepSeek V3: used to choose, not weigh
        self.experts = Experts(d_model, s)
        shared = MLP(s.n_shared * s.d_expert, s.activation, s.gated)
        self.shared = (GatedMLP if s.gated else PlainMLP)(d_model, shared) if s.n_shared else None
        # Qwen3-Next: the shared experts' output times sigmoid(w . x), one scalar per token
        self.shared_gate = nn.Linear(d_model, 1, bias=False) if s.shared_gate else None
        self.dispatch = "sorted"
        self.auxiliary_loss = None
        self.register_buffer("load", torch.zeros(s.n_experts), persistent=False)
        self.register_buffer("load_since_step", torch.zeros(s.n_experts), persistent=False)

    def inactive_parameters(self) -> int:
        """Parameters a token does not use: the weights of the n_experts - top_k experts it is not routed to."""
        per_expert = sum(p[0].numel() for p in self.experts.parameters())
        return (self.settings.n_experts - self.settings.top_k) * per_expert

    def route(self, x: torch.Tensor):
        """Tokens x (N, d_model) -> (weights (N, top_k), experts (N, top_k), scores (N, E), logits (N, E))."""
        s = self.settings
        logits = self.router(x)  # (N, E)
        scores = logits.float().softmax(-1) if s.router == "softmax" else logits.float().sigmoid()
        for_choice = scores + self.selection_bias  # the bias moves selection only
        if s.n_group > 1:
            grouped = for_choice.view(-1, s.n_group, s.n_experts // s.n_group)  # (N, G, E / G)
            group_score = grouped.topk(min(2, grouped.shape[-1]), dim=-1).values.sum(-1)  # (N, G): best two
            best_groups = group_score.topk(s.topk_group, dim=-1).indices
            allowed = torch.zeros_like(group_score, dtype=torch.bool).scatter_(1, best_groups, True)
            for_choice = for_choice.masked_fill(~allowed.repeat_interleave(s.n_experts // s.n_group, 1), 0.0)
        experts = for_choice.topk(s.top_k, dim=-1).indices  # (N, k)
        weights = scores.gather(1, experts)  # (N, k)
        if s.norm_topk:
            weights = weights / (weights.sum(-1, keepdim=True) + (1e-20 if s.router == "sigmoid" else 0.0))
        return (weights * s.routed_scaling).to(x.dtype), experts, scores, logits

    def kept(self, experts: torch.Tensor) -> torch.Tensor | None:
        """With a capacity factor: which (token, slot) assignments fit their expert's capacity, in token order."""
        s = self.settings
        if s.capacity_factor is None:
            return None
        capacity = math.ceil(s.capacity_factor * experts.numel() / s.n_experts)
        one_hot = F.one_hot(experts.reshape(-1), s.n_experts)  # (N * k, E), token-major
        place = (one_hot.cumsum(0) * one_hot).sum(-1) - 1  # each assignment's place in its expert's queue
        return (place < capacity).view_as(experts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d_model)
        shape = x.shape
        x = x.reshape(-1, shape[-1])  # (N, d_model)
        weights, experts, scores, logits = self.route(x)
        keep = self.kept(experts)
        if keep is not None:
            weights = weights * keep
        counts_all = torch.bincount(experts.reshape(-1), minlength=self.settings.n_experts)
        self.load = counts_all.float().detach()
        if self.training:
            self._record_balance(counts_all, scores, logits)
        out = (self._loop if self.dispatch == "loop" else self._sorted)(x, weights, experts, keep)
        if self.shared is not None:
            shared = self.shared(x)
            out = out + (shared if self.shared_gate is None else torch.sigmoid(self.shared_gate(x)) * shared)
        return out.view(shape)

    def _loop(self, x, weights, experts, keep):
        """The textbook dispatch: for each expert, gather its tokens, run it, add back weighted."""
        out = torch.zeros_like(x)
        for e in range(self.settings.n_experts):
            chosen = experts == e if keep is None else (experts == e) & keep
            token, slot = torch.where(chosen)
            if token.numel():
                out.index_add_(0, token, self.experts.one(e, x[token]) * weights[token, slot, None])
        return out

    def _sorted(self, x, weights, experts, keep):
        """Sort the (token, slot) pairs by expert, so each expert's pairs are one contiguous run; run the experts."""
        E, k = self.settings.n_experts, experts.shape[1]
        flat = experts.reshape(-1) if keep is None else experts.reshape(-1).masked_fill(~keep.reshape(-1), E)
        order = torch.argsort(flat, stable=True)  # dropped pairs (expert E) go last
        counts = torch.bincount(flat, minlength=E + 1)[:E].tolist()  # one host sync for all experts
        order = order[:sum(counts)]
        return self.experts.sorted(x, order // k, weights.reshape(-1)[order], counts)

    def _record_balance(self, counts, scores, logits) -> None:
        s = self.settings
        self.load_since_step += counts.detach()
        loss = None
        if s.aux_loss_weight:
            fraction = counts.float() / counts.sum()  # f_i: share of assignments (not differentiable)
            probability = (scores / scores.sum(-1, keepdim=True)).mean(0)  # P_i: mean router probability
            loss = s.aux_loss_weight * s.n_experts * (fraction * probability).sum()
        if s.z_loss_weight:
            z = s.z_loss_weight * logits.float().logsumexp(-1).square().mean()
            loss = z if loss is None else loss + z
        self.auxiliary_loss = loss

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        """DeepSeek V3's auxiliary-loss-free balancing: raise the bias of underloaded experts, lower overloaded."""
        rate = self.settings.bias_update_rate
        if rate and self.load_since_step.sum() > 0:
            self.selection_bias += rate * torch.sign(self.load_since_step.mean() - self.load_since_step)
        self.load_since_step.zero_()
