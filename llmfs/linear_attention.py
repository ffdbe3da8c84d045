"""Linear attention and its descendants: a fixed-size state instead of a growing KV cache (chapter 9).

Without the softmax, attention's past folds into one d_k × d_v matrix S per head, updated token by token
like an RNN, and read by the query, o_t = S_tᵀ q_t:

    linear attention       S_t = S_{t-1} + k_t v_tᵀ                               (Katharopoulos et al., 2020)
    gated (Mamba-2's SSD)  S_t = α_t S_{t-1} + k_t v_tᵀ                           (Dao & Gu, 2024)
    DeltaNet               S_t = S_{t-1} + β_t k_t (v_t - S_{t-1}ᵀ k_t)ᵀ           (Schlag et al., 2021)
    Gated DeltaNet         S_t = α_t S_{t-1} + β_t k_t (v_t - (α_t S_{t-1})ᵀ k_t)ᵀ  (Yang et al., 2024)
    KDA (Kimi Linear)      as Gated DeltaNet, with one decay per key channel: diag(α_t) S_{t-1}

The decay α_t = exp(g_t) is passed in log space, `log_decay` g: (B, H, T) one per head and step, or
(B, H, T, d_k) one per key channel (KDA). `recurrent` is the definition (a loop over tokens); `parallel` is
the masked quadratic form (no delta rule); `chunked` processes chunks of C tokens with matrix products and
carries the state across chunks (for the delta rule, through the WY/UT representation).

`LinearAttention` holds one layer's settings; `LinearAttentionLayer` is the real layer (Qwen3-Next's Gated
DeltaNet, Kimi Linear's KDA): L2-normalised queries and keys, a short causal convolution, per-step decay
and write strength β, and an output gate through a gated RMSNorm. Its cache holds the state and the
convolution's last inputs: the same number of bytes after ten tokens or ten million.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .cache import LayerCache
from .norms import RMSNorm
from .settings import ConfigError, Settings, choice, is_positive_int, positive_int

# --- the recurrence in its three forms ----------------------------------------------------------------


def elu_feature_map(x: torch.Tensor) -> torch.Tensor:
    """φ(x) = elu(x) + 1 > 0: the feature map of Katharopoulos et al. (2020), so φ(q)ᵀφ(k) acts as a similarity."""
    return F.elu(x) + 1


def l2_normalize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """x / sqrt(|x|² + eps) over the last axis (as the FLA kernels): keys of length 1 keep the delta rule stable."""
    return x * torch.rsqrt((x * x).sum(-1, keepdim=True) + eps)


def _decay_state(state: torch.Tensor, log_decay_t: torch.Tensor) -> torch.Tensor:
    """state (B, H, d_k, d_v) times exp(g_t): g_t (B, H) per head, or (B, H, d_k) per key channel (rows of S)."""
    factor = log_decay_t.exp()
    return state * (factor[..., None, None] if factor.dim() == 2 else factor[..., None])


def recurrent(q, k, v, log_decay=None, beta=None, state=None):
    """The definition, one token at a time. q, k (B, H, T, d_k), v (B, H, T, d_v), beta (B, H, T) or None
    (no delta rule), log_decay (B, H, T) or (B, H, T, d_k) or None. Returns (outputs (B, H, T, d_v), state)."""
    B, H, T, d_k = k.shape
    S = q.new_zeros(B, H, d_k, v.shape[-1]) if state is None else state  # (B, H, d_k, d_v)
    outputs = []
    for t in range(T):
        if log_decay is not None:
            S = _decay_state(S, log_decay[:, :, t])
        k_t, write = k[:, :, t], v[:, :, t]  # (B, H, d_k), (B, H, d_v)
        if beta is not None:  # delta rule: write only what the state does not already predict for this key
            predicted = torch.einsum("bhkv,bhk->bhv", S, k_t)
            write = beta[:, :, t, None] * (write - predicted)
        S = S + k_t[..., :, None] * write[..., None, :]
        outputs.append(torch.einsum("bhkv,bhk->bhv", S, q[:, :, t]))
    return torch.stack(outputs, dim=2), S


def decayed_scores(a, b, cum_log_decay=None, diagonal: bool = True) -> torch.Tensor:
    """(..., T, T) scores Σ_c a_i[c] b_j[c] exp(G_i[c] - G_j[c]) for j <= i (j < i without the diagonal), else 0.

    a, b (..., T, d); cum_log_decay G: None, (..., T) per head, or (..., T, d) per channel. The exponent is
    masked before exp, so long decays underflow to 0 instead of overflowing.
    """
    T = a.shape[-2]
    keep = torch.ones(T, T, dtype=torch.bool, device=a.device).tril(0 if diagonal else -1)
    if cum_log_decay is None:
        return (a @ b.transpose(-1, -2)).masked_fill(~keep, 0.0)
    if cum_log_decay.dim() == a.dim() - 1:  # one decay per head: a (T, T) matrix of decays
        gap = (cum_log_decay[..., :, None] - cum_log_decay[..., None, :]).masked_fill(~keep, float("-inf"))
        return (a @ b.transpose(-1, -2)) * gap.exp()
    gap = cum_log_decay[..., :, None, :] - cum_log_decay[..., None, :, :]  # (..., T, T, d): per channel
    gap = gap.masked_fill(~keep[..., None], float("-inf"))
    return torch.einsum("...ic,...jc,...ijc->...ij", a, b, gap.exp())


def parallel(q, k, v, log_decay=None) -> torch.Tensor:
    """The masked quadratic form (no delta rule): O = (Q Kᵀ ⊙ M) V, M_ij = α_{j+1} ⋯ α_i for j <= i, else 0.

    Softmax attention without the softmax: T × T scores, no state. Returns (B, H, T, d_v).
    """
    cum = None if log_decay is None else log_decay.float().cumsum(dim=2)
    return decayed_scores(q, k, cum) @ v


def chunked(q, k, v, log_decay=None, beta=None, chunk_size: int = 64, state=None):
    """The chunkwise form: within a chunk of C tokens, matrix products; across chunks, the state is carried.

    Equals `recurrent` for any T (the last chunk is padded with tokens that write nothing). For the delta
    rule, the writes u of a chunk solve a unit lower-triangular system (the UT/WY representation):
    (I + A) U = diag(β) (V - K_decayed S_0), A_ij = β_i ⟨k_i ⊙ α_{j+1..i}, k_j⟩ for j < i.
    Computed in float32. Returns (outputs (B, H, T, d_v), final state (B, H, d_k, d_v)).
    """
    dtype = v.dtype
    B, H, T, d_k = k.shape
    C, pad = chunk_size, (-T) % chunk_size
    q, k, v = (F.pad(x.float(), (0, 0, 0, pad)).unflatten(2, (-1, C)) for x in (q, k, v))  # (B, H, N, C, d)
    cum = None
    if log_decay is not None:  # cumulative log decay from the start of each chunk: (B, H, N, C) or (..., d_k)
        per_channel = log_decay.dim() == 4
        g = F.pad(log_decay.float(), (0, 0, 0, pad) if per_channel else (0, pad))
        cum = g.unflatten(2, (-1, C)).cumsum(dim=3)
        last = cum[:, :, :, -1:]  # the whole chunk's decay
        decay_q = cum.exp() if per_channel else cum.exp()[..., None]  # start of chunk -> token i
        decay_k = (last - cum).exp() if per_channel else (last - cum).exp()[..., None]  # token j -> end of chunk
        chunk_decay = last.exp().transpose(-1, -2) if per_channel else last.exp()[..., None]  # (B, H, N, d_k|1, 1)
    else:
        decay_q = decay_k = chunk_decay = torch.ones(1, 1, q.shape[2], 1, 1, device=q.device)  # no decay
    within = decayed_scores(q, k, cum)  # (B, H, N, C, C): how token i reads token j of its own chunk
    if beta is not None:
        b = F.pad(beta.float(), (0, pad)).unflatten(2, (-1, C))[..., None]  # (B, H, N, C, 1)
        system = torch.eye(C, device=q.device) + b * decayed_scores(k, k, cum, diagonal=False)
        writes = torch.linalg.solve_triangular(system, b * v, upper=False, unitriangular=True)
        state_reads = torch.linalg.solve_triangular(system, b * k * decay_q, upper=False, unitriangular=True)
    S = q.new_zeros(B, H, d_k, v.shape[-1]) if state is None else state.float()
    outputs = []
    for n in range(q.shape[2]):
        u = v[:, :, n] if beta is None else writes[:, :, n] - state_reads[:, :, n] @ S  # (B, H, C, d_v)
        outputs.append((q[:, :, n] * decay_q[:, :, n]) @ S + within[:, :, n] @ u)
        S = S * chunk_decay[:, :, n] + (k[:, :, n] * decay_k[:, :, n]).transpose(-1, -2) @ u
    out = torch.cat(outputs, dim=2)[:, :, :T]
    return out.to(dtype), S.to(state.dtype if state is not None else dtype)


# --- the layer's settings -------------------------------------------------------------------------------

KINDS = ("linear", "deltanet", "gated_deltanet", "kda")
KIND_NAMES = {"linear": "LinearAttn", "deltanet": "DeltaNet", "gated_deltanet": "GatedDeltaNet", "kda": "KDA"}
GATE_ACTIVATIONS = {"silu": F.silu, "sigmoid": torch.sigmoid}


@dataclass(frozen=True)
class LinearAttention(Settings):
    """Settings of a linear-attention layer with a fixed-size state per head.

    kind: "linear" (S += k vᵀ), "deltanet" (delta rule), "gated_deltanet" (delta rule + a decay per head and
    step: Qwen3-Next) or "kda" (a decay per key channel: Kimi Linear). n_heads query/key heads of head_dim
    (None: d_model // n_heads); n_v_heads value heads (None: n_heads; more share each key, Qwen3-Next's
    16 / 32) of v_head_dim (None: head_dim). conv_size: the short causal convolution on q, k, v (None: none).
    chunk_size: tokens per chunk of the chunked form (a power of two). output_gate: the activation of the
    gate of the output's gated RMSNorm ("silu" Qwen3-Next, "sigmoid" Kimi; None: no norm, no gate).
    low_rank: Kimi's bottleneck width for the output gate and the KDA decay (None: full-rank projections).
    """

    kind: str = "gated_deltanet"
    n_heads: int = 16
    n_v_heads: int | None = None
    head_dim: int | None = None
    v_head_dim: int | None = None
    conv_size: int | None = 4
    chunk_size: int = 64
    output_gate: str | None = "silu"
    low_rank: int | None = None

    derivable = ("n_v_heads", "head_dim", "v_head_dim")

    def derived(self, d_model: int) -> dict:
        if not is_positive_int(self.n_heads):
            return {}
        out = {"n_v_heads": self.n_heads}
        head_dim = self.head_dim
        if head_dim is None and d_model % self.n_heads == 0:
            head_dim = out["head_dim"] = d_model // self.n_heads
        if head_dim is not None:
            out["v_head_dim"] = head_dim
        return out

    def check(self, d_model: int) -> None:
        choice("kind", self.kind, KINDS)
        positive_int("n_heads", self.n_heads)
        if self.head_dim is None:
            raise ConfigError(f"d_model={d_model} is not divisible by n_heads={self.n_heads}; "
                              "change one of them or set head_dim explicitly.")
        positive_int("head_dim", self.head_dim)
        positive_int("n_v_heads", self.n_v_heads)
        positive_int("v_head_dim", self.v_head_dim)
        if self.n_v_heads % self.n_heads:
            raise ConfigError(f"n_v_heads={self.n_v_heads} is not divisible by n_heads={self.n_heads}: "
                              "each query/key head must serve the same number of value heads.")
        if self.conv_size is not None:
            if not is_positive_int(self.conv_size):
                raise ConfigError(f"conv_size must be a positive integer or None (no convolution), "
                                  f"got {self.conv_size!r}.")
        positive_int("chunk_size", self.chunk_size)
        if self.chunk_size & (self.chunk_size - 1):
            raise ConfigError(f"chunk_size must be a power of two (16, 32, 64, ...), got {self.chunk_size!r}.")
        choice("output_gate", self.output_gate, (None, *GATE_ACTIVATIONS))
        if self.low_rank is not None:
            positive_int("low_rank", self.low_rank)

    @property
    def rotary_head_dim(self) -> int:
        return self.head_dim

    @property
    def conv_channels(self) -> int:
        """Channels of the short convolution: queries, keys and values side by side."""
        return 2 * self.n_heads * self.head_dim + self.n_v_heads * self.v_head_dim

    def state_values(self) -> int:
        """Numbers in the recurrent state of one sequence: a d_k × d_v matrix per value head."""
        return self.n_v_heads * self.head_dim * self.v_head_dim

    def cache_values(self, seq_len: int) -> int:
        """Numbers one sequence's cache holds, whatever `seq_len`: the state and the convolution's last inputs."""
        return self.state_values() + self.conv_channels * ((self.conv_size or 1) - 1)

    def build(self, config, layer) -> LinearAttentionLayer:
        return LinearAttentionLayer(config, layer)

    def tiny(self) -> LinearAttention:
        """4 query/key heads of 16; shared keys stay shared (8 value heads)."""
        n_v_heads = 4 if self.n_v_heads in (None, self.n_heads) else 8
        return LinearAttention(self.kind, 4, n_v_heads, 16, 16, self.conv_size, self.chunk_size, self.output_gate,
                               None if self.low_rank is None else 16)

    def __str__(self) -> str:
        n_v_heads, v_head_dim = self.n_v_heads or self.n_heads, self.v_head_dim or self.head_dim  # before resolving
        heads = f"{self.n_heads} heads" if n_v_heads == self.n_heads else f"{self.n_heads} qk / {n_v_heads} v heads"
        dims = f"d={self.head_dim}" if v_head_dim == self.head_dim else f"d_k={self.head_dim}, d_v={v_head_dim}"
        extras = [f"conv {self.conv_size}"] if self.conv_size else []
        return f"{KIND_NAMES.get(self.kind, self.kind)}({', '.join([heads, dims] + extras)})"


# --- the layer ------------------------------------------------------------------------------------------


class RecurrentLayerCache(LayerCache):
    """A linear-attention layer's cache: the convolution's last conv_size - 1 inputs (B, channels, K - 1) and
    the state (B, n_v_heads, d_k, d_v). Both are allocated up front: the size never grows."""

    def __init__(self, batch_size: int, conv_state: torch.Tensor, state: torch.Tensor):
        super().__init__(batch_size)
        self.tensors = (conv_state, state)

    def update(self, conv_state: torch.Tensor, state: torch.Tensor, new_tokens: int) -> None:
        """Replace both with their values after `new_tokens` more tokens."""
        self.check_batch((conv_state, state))
        self.tensors = (conv_state.to(self.tensors[0].dtype), state.to(self.tensors[1].dtype))
        self.length += new_tokens


class GatedRMSNorm(RMSNorm):
    """RMSNorm of each head's output, then times activation(gate): the output gate of Gated DeltaNet and KDA."""

    def __init__(self, dim: int, eps: float, activation: str):
        super().__init__(dim, eps)
        self.activation = GATE_ACTIVATIONS[activation]

    def forward(self, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.activation(gate.float()).to(x.dtype)


def _projection(d_in: int, d_out: int, rank: int | None) -> nn.Module:
    """A linear map d_in -> d_out, through a rank-`rank` bottleneck when given (Kimi's low-rank gates)."""
    if rank is None:
        return nn.Linear(d_in, d_out, bias=False)
    return nn.Sequential(nn.Linear(d_in, rank, bias=False), nn.Linear(rank, d_out, bias=False))


class LinearAttentionLayer(nn.Module):
    """A linear-attention layer as real models build it (Qwen3-Next's Gated DeltaNet, Kimi Linear's KDA).

    q, k, v projections -> short causal convolution + SiLU -> L2-normalised q and k (q also / √d_k) ->
    the recurrence of `kind` (chunked for prompts, one step at a time when decoding) -> gated RMSNorm per
    head -> output projection. The decay is α = exp(-exp(A_log) · softplus(a + dt_bias)) with `a` projected
    from the input: one per value head (Gated DeltaNet) or per value head and key channel (KDA).
    """

    def __init__(self, config, layer):
        super().__init__()
        s = layer.attention
        self.settings = s
        d = config.d_model
        self.q_proj = nn.Linear(d, s.n_heads * s.head_dim, bias=False)
        self.k_proj = nn.Linear(d, s.n_heads * s.head_dim, bias=False)
        self.v_proj = nn.Linear(d, s.n_v_heads * s.v_head_dim, bias=False)
        self.conv = None
        if s.conv_size is not None:  # depthwise: each channel mixes its own last conv_size inputs
            self.conv = nn.Conv1d(s.conv_channels, s.conv_channels, s.conv_size, groups=s.conv_channels, bias=False)
        if s.kind != "linear":
            self.beta_proj = nn.Linear(d, s.n_v_heads, bias=False)
        if s.kind in ("gated_deltanet", "kda"):
            decay_width = s.n_v_heads * (s.head_dim if s.kind == "kda" else 1)
            self.decay_proj = _projection(d, decay_width, s.low_rank if s.kind == "kda" else None)
            # Mamba's initialisation: rates A in [1, 16], time steps in [0.001, 0.1] (dt_bias = softplus⁻¹(dt)).
            self.A_log = nn.Parameter(torch.empty(s.n_v_heads).uniform_(1, 16).log())
            dt = torch.exp(torch.empty(decay_width).uniform_(math.log(1e-3), math.log(1e-1)))
            self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        if s.output_gate is not None:
            self.gate_proj = _projection(d, s.n_v_heads * s.v_head_dim, s.low_rank)
            self.norm = GatedRMSNorm(s.v_head_dim, config.norm_eps, s.output_gate)
        self.out_proj = nn.Linear(s.n_v_heads * s.v_head_dim, d, bias=False)

    def new_cache(self, batch_size: int) -> RecurrentLayerCache:
        """An empty cache: zero convolution inputs and a zero state, in this layer's dtype."""
        s, weight = self.settings, self.q_proj.weight
        conv_state = weight.new_zeros(batch_size, s.conv_channels, (s.conv_size or 1) - 1)
        state = weight.new_zeros(batch_size, s.n_v_heads, s.head_dim, s.v_head_dim)
        return RecurrentLayerCache(batch_size, conv_state, state)

    def short_conv(self, x: torch.Tensor, past: torch.Tensor | None):
        """Causal depthwise convolution + SiLU over (B, T, channels); `past` holds the previous K - 1 inputs."""
        if self.conv is None:
            return x, past
        x = x.transpose(1, 2)  # (B, channels, T)
        if past is None:
            past = x.new_zeros(x.shape[0], x.shape[1], self.conv.kernel_size[0] - 1)
        full = torch.cat((past.to(x.dtype), x), dim=2)
        out = F.conv1d(full, self.conv.weight, groups=x.shape[1])  # (B, channels, T)
        return F.silu(out).transpose(1, 2), full[:, :, full.shape[2] - past.shape[2]:]

    def log_decay(self, x: torch.Tensor) -> torch.Tensor | None:
        """log α: (B, n_v_heads, T) for Gated DeltaNet, (B, n_v_heads, T, d_k) for KDA, None otherwise."""
        s = self.settings
        if s.kind not in ("gated_deltanet", "kda"):
            return None
        B, T, _ = x.shape
        rate = -self.A_log.float().exp()
        if s.kind == "gated_deltanet":
            g = rate * F.softplus(self.decay_proj(x).float() + self.dt_bias)  # (B, T, n_v_heads)
            return g.transpose(1, 2)
        a = (self.decay_proj(x).float() + self.dt_bias).view(B, T, s.n_v_heads, s.head_dim)
        return (rate[:, None] * F.softplus(a)).transpose(1, 2)

    def forward(self, x: torch.Tensor, positions: torch.Tensor, cache: RecurrentLayerCache | None = None):
        s = self.settings
        B, T, _ = x.shape
        conv_state, state = (None, None) if cache is None else cache.tensors
        qkv = torch.cat((self.q_proj(x), self.k_proj(x), self.v_proj(x)), dim=-1)  # (B, T, channels)
        qkv, conv_state = self.short_conv(qkv, conv_state)
        q, k, v = qkv.split([s.n_heads * s.head_dim, s.n_heads * s.head_dim, s.n_v_heads * s.v_head_dim], dim=-1)
        q = q.view(B, T, s.n_heads, s.head_dim).transpose(1, 2).float()  # (B, n_heads, T, d_k)
        k = k.view(B, T, s.n_heads, s.head_dim).transpose(1, 2).float()
        v = v.view(B, T, s.n_v_heads, s.v_head_dim).transpose(1, 2).float()  # (B, n_v_heads, T, d_v)
        q, k = l2_normalize(q) / math.sqrt(s.head_dim), l2_normalize(k)
        if s.n_v_heads != s.n_heads:  # each query/key head serves a group of consecutive value heads
            q, k = (t.repeat_interleave(s.n_v_heads // s.n_heads, dim=1) for t in (q, k))
        beta = None if s.kind == "linear" else torch.sigmoid(self.beta_proj(x).float()).transpose(1, 2)
        log_decay = self.log_decay(x)
        if T == 1 and state is not None:
            out, state = recurrent(q, k, v, log_decay, beta, state.float())
        else:
            out, state = chunked(q, k, v, log_decay, beta, s.chunk_size, None if state is None else state.float())
        if cache is not None:
            cache.update(conv_state, state, T)
        out = out.transpose(1, 2).to(x.dtype)  # (B, T, n_v_heads, d_v)
        if s.output_gate is not None:
            out = self.norm(out, self.gate_proj(x).view(B, T, s.n_v_heads, s.v_head_dim))
        return self.out_proj(out.reshape(B, T, s.n_v_heads * s.v_head_dim))


class Mamba2Mixer(nn.Module):
    """Mamba-2's mixer as gated linear attention with a scalar decay per head (the SSD view): in_proj -> [z | x, B, C
    | dt]; a causal depthwise conv + SiLU on (x, B, C); queries C, keys B, values Δ·x, log decay Δ·A (Δ = softplus(dt
    + dt_bias), A = -exp(A_log)); plus D·x; a gated RMSNorm (y · SiLU(z), per group) and out_proj. Same weight names
    as transformers' `Mamba2Mixer`, so its state dict loads directly."""

    def __init__(self, d_model: int, n_heads: int, head_dim: int, state_size: int, n_groups: int = 1,
                 conv_size: int = 4, chunk_size: int = 64, eps: float = 1e-5, bias: bool = False, conv_bias: bool = True):
        super().__init__()
        for field, value in (("n_heads", n_heads), ("head_dim", head_dim), ("state_size", state_size),
                             ("n_groups", n_groups), ("conv_size", conv_size), ("chunk_size", chunk_size)):
            positive_int(field, value)
        if n_heads % n_groups:
            raise ConfigError(f"n_heads={n_heads} is not divisible by n_groups={n_groups}.")
        self.n_heads, self.head_dim, self.state_size, self.n_groups = n_heads, head_dim, state_size, n_groups
        self.chunk_size, self.eps, self.d_inner = chunk_size, eps, n_heads * head_dim
        self.conv_dim = self.d_inner + 2 * n_groups * state_size
        self.in_proj = nn.Linear(d_model, self.d_inner + self.conv_dim + n_heads, bias=bias)
        self.conv1d = nn.Conv1d(self.conv_dim, self.conv_dim, conv_size, groups=self.conv_dim, bias=conv_bias)
        self.dt_bias = nn.Parameter(torch.zeros(n_heads))
        self.A_log = nn.Parameter(torch.zeros(n_heads))
        self.D = nn.Parameter(torch.ones(n_heads))
        self.norm = nn.Module()
        self.norm.weight = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)

    def new_state(self, batch_size: int) -> dict:
        """The fixed-size state: the conv's last conv_size - 1 inputs and the (B, H, state_size, head_dim) memory."""
        w = self.conv1d.weight
        return {"conv": w.new_zeros(batch_size, self.conv_dim, self.conv1d.kernel_size[0] - 1),
                "ssm": w.new_zeros(batch_size, self.n_heads, self.state_size, self.head_dim)}

    def forward(self, x: torch.Tensor, state: dict | None = None) -> torch.Tensor:  # (B, T, d_model)
        B, T, _ = x.shape
        z, xbc, dt = self.in_proj(x).split([self.d_inner, self.conv_dim, self.n_heads], dim=-1)
        past = state["conv"] if state is not None else xbc.new_zeros(B, self.conv_dim, self.conv1d.kernel_size[0] - 1)
        padded = torch.cat([past, xbc.transpose(1, 2)], dim=-1)  # (B, conv_dim, K - 1 + T)
        xbc = F.silu(self.conv1d(padded)).transpose(1, 2)  # (B, T, conv_dim)
        xs, Bs, Cs = xbc.split([self.d_inner, self.n_groups * self.state_size, self.n_groups * self.state_size], -1)
        xs = xs.view(B, T, self.n_heads, self.head_dim)
        per_head = lambda t: t.view(B, T, self.n_groups, self.state_size).repeat_interleave(  # noqa: E731
            self.n_heads // self.n_groups, dim=2).transpose(1, 2)  # (B, H, T, state_size)
        delta = F.softplus(dt + self.dt_bias)  # (B, T, H)
        log_decay = (delta * -torch.exp(self.A_log.float())).transpose(1, 2)  # (B, H, T)
        v = (xs * delta[..., None]).transpose(1, 2)  # (B, H, T, head_dim)
        form = recurrent if state is not None and T == 1 else chunked
        kwargs = {} if form is recurrent else {"chunk_size": self.chunk_size}
        y, ssm = form(per_head(Cs), per_head(Bs), v, log_decay, None,
                      state=None if state is None else state["ssm"], **kwargs)
        if state is not None:
            state["conv"], state["ssm"] = padded[..., padded.shape[-1] - past.shape[-1]:], ssm
        y = y.transpose(1, 2) + self.D[:, None] * xs  # (B, T, H, head_dim)
        y = y.reshape(B, T, self.d_inner) * F.silu(z)
        grouped = y.view(B, T, self.n_groups, -1)
        y = (grouped * torch.rsqrt(grouped.pow(2).mean(-1, keepdim=True) + self.eps)).view(B, T, -1)
        return self.out_proj(self.norm.weight * y)
