"""Multi-token prediction (MTP): besides the next token, extra heads on the model predict the tokens after it.

Two forms, on one shared trunk (the main `Transformer`), both sharing its token embedding and output head:

    sequential (DeepSeek V3)    depth k at position i:  h'ₖ = Wₖ [RMSNorm(hₖ₋₁); RMSNorm(Emb(t_{i+k}))]
                                hₖ = Blockₖ(h'ₖ),  logits = Head(Normₖ(hₖ)) predict t_{i+1+k}
                                (h₀: the main model's last hidden state, before its final norm)
    parallel (Gloeckle et al.)  head k at position i:   hₖ = Blockₖ(h₀),  logits = Head(Normₖ(hₖ))
                                predict t_{i+1+k}

Training adds λ · (mean over depths of each depth's cross entropy) to the next-token loss (`mtp_loss`); at
inference the heads draft tokens that the main model verifies in one pass (`mtp_speculative_generate`).

Depth 1 equals transformers' `MtpLayer` on the same h₀ (tests/test_mtp.py). transformers feeds the main model's
state after its final norm as h₀ and chains each depth's normed output; here h₀ and the chained states are taken
before the norm, as the DeepSeek V3 paper writes the equations, so depths >= 2 differ from transformers'.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from .cache import KVCache
from .config import LayerSpec, ModelConfig
from .generate import check_decoding_arguments
from .model import Block, Transformer
from .norms import RMSNorm, make_norm
from .settings import ConfigError, Settings, boolean, choice, number, positive_int
from .speculative import SpeculativeStats, accept_or_correct, check_one_sequence_fits, probabilities
from .training import _param_groups, lm_loss, set_seed

MTP_FORMS = ("sequential", "parallel")


@dataclass(frozen=True)
class MTP(Settings):
    """Settings of multi-token prediction heads.

    depths: extra tokens predicted per position (depth k predicts t_{i+1+k}); form: "sequential" (DeepSeek V3)
    or "parallel" (Gloeckle et al. 2024); loss_weight: λ in next-token loss + λ · mean of the depths' losses
    (DeepSeek V3: 0.3, later 0.1); layer: the LayerSpec of each head's block (None: the main model's last layer).
    """

    depths: int = 1
    form: str = "sequential"
    loss_weight: float = 0.3
    layer: LayerSpec | None = None

    def __post_init__(self):
        self._check_fields()

    def _check_fields(self) -> None:
        positive_int("depths", self.depths)
        choice("form", self.form, MTP_FORMS)
        number("loss_weight", self.loss_weight, low=0, low_open=False)
        if self.layer is not None and not isinstance(self.layer, LayerSpec):
            raise ConfigError(f"layer must be a LayerSpec or None (the main model's last layer), got {self.layer!r}.")

    def check(self, d_model: int) -> None:
        self._check_fields()

    def resolved(self, d_model: int) -> MTP:
        """A validated copy whose layer (if given) has its derived sizes filled in for `d_model`."""
        out = super().resolved(d_model)
        if out.layer is None:
            return out
        try:
            return dataclasses.replace(out, layer=out.layer.resolved(d_model))
        except ConfigError as error:
            raise ConfigError(f"layer: {error}") from None

    def __str__(self) -> str:
        return f"MTP({self.form}, {self.depths} depth{'s' * (self.depths > 1)}, λ={self.loss_weight:g})"


def _new_block_cache(block: Block, config: ModelConfig, batch_size: int) -> KVCache:
    """A one-layer cache for a head's block (the same kind the main model's layers make)."""
    return KVCache([block.attention.sublayer.new_cache(batch_size)], config)


class SequentialMTPModule(nn.Module):
    """DeepSeek V3's MTP module k: project [RMSNorm(h_prev); RMSNorm(Emb(t_{i+k}))] to d_model, then one block."""

    def __init__(self, config: ModelConfig, spec: LayerSpec):
        super().__init__()
        self.hidden_norm = RMSNorm(config.d_model, eps=config.norm_eps)
        self.token_norm = RMSNorm(config.d_model, eps=config.norm_eps)
        self.project = nn.Linear(2 * config.d_model, config.d_model, bias=False)  # W_k: 2·d_model -> d_model
        self.block = Block(config, spec)
        self.norm = make_norm(config)  # before the shared output head (DeepSeek V3's shared_head.norm)

    def forward(self, hidden, token_embeddings, positions, cache=None):
        """hidden, token_embeddings: (B, T, d_model) at positions (T,) -> this depth's hidden (B, T, d_model)."""
        x = torch.cat((self.hidden_norm(hidden), self.token_norm(token_embeddings)), dim=-1)  # (B, T, 2·d_model)
        return self.block(self.project(x), positions, cache=cache)


class ParallelMTPHead(nn.Module):
    """Gloeckle et al.'s head k: one block on the trunk's hidden state h₀; its own norm before the shared head."""

    def __init__(self, config: ModelConfig, spec: LayerSpec):
        super().__init__()
        self.block = Block(config, spec)
        self.norm = make_norm(config)

    def forward(self, hidden, positions, cache=None):
        """hidden: (B, T, d_model) trunk states at positions (T,) -> this head's hidden (B, T, d_model)."""
        return self.block(hidden, positions, cache=cache)


def main_forward(main: Transformer, idx: torch.Tensor, cache=None):
    """The main model's logits (B, T, V) and its last hidden state before the final norm (B, T, d_model).

    The hidden state is read with a hook on `final_norm`'s input, so `Transformer.forward` stays the only forward.
    """
    captured = []
    handle = main.final_norm.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    try:
        logits = main(idx, cache=cache)
    finally:
        handle.remove()
    if len(captured) != 1:
        raise RuntimeError("could not read the main model's hidden state: its final_norm ran "
                           f"{len(captured)} times in one forward (expected once).")
    return logits, captured[0]


class MTPModel(nn.Module):
    """A Transformer (`main`) plus MTP heads: forward gives the main logits and one logits tensor per depth.

    `base` is a ModelConfig (a new main model is built) or an existing Transformer (heads are added to it).
    """

    def __init__(self, base, mtp: MTP = MTP()):
        super().__init__()
        if isinstance(base, Transformer):
            main = base
        elif isinstance(base, ModelConfig):
            main = Transformer(base)
        else:
            raise TypeError(f"MTPModel needs a llmfs.ModelConfig or llmfs.Transformer, got {type(base).__name__}.")
        if not isinstance(mtp, MTP):
            raise TypeError(f"mtp must be llmfs.mtp.MTP settings, got {type(mtp).__name__}.")
        self.main = main
        self.settings = mtp.resolved(main.config.d_model)
        spec = self.settings.layer if self.settings.layer is not None else main.config.layers[-1]
        head = SequentialMTPModule if self.settings.form == "sequential" else ParallelMTPHead
        self.heads = nn.ModuleList(head(main.config, spec) for _ in range(self.settings.depths))
        self.heads.apply(main._init_weights)  # the same GPT-2 initialisation as the main model's layers

    @property
    def config(self) -> ModelConfig:
        return self.main.config

    def embed(self, idx, trunk_gradient=True):
        """The shared token embedding of ids (B, T) -> (B, T, d_model), scaled as the main model scales it."""
        weight = self.main.token_embedding.weight
        x = F.embedding(idx, weight if trunk_gradient else weight.detach())
        return x * torch.tensor(self.config.d_model ** 0.5, dtype=x.dtype) if self.config.scale_embeddings else x

    def head_logits(self, depth: int, hidden, trunk_gradient=True):
        """Depth `depth`'s (1-based) logits from its hidden state (..., d_model): its norm, then the shared head."""
        weight = self.main.lm_head.weight
        logits = F.linear(self.heads[depth - 1].norm(hidden), weight if trunk_gradient else weight.detach())
        cap = self.config.logit_softcap
        return logits if cap is None else cap * torch.tanh(logits / cap)

    def forward(self, idx, trunk_gradient=True):
        """Main logits (B, T, V) and a list whose entry k-1 is depth k's logits, predicting t_{i+1+k} at position i:
        (B, T - k, V) for the sequential form (it needs t_{i+k} from idx), (B, T, V) for the parallel form.

        trunk_gradient=False: the heads read detached trunk states, embedding and head weights, so their loss
        trains the heads only and the main model learns exactly as it would without them.
        """
        logits, hidden = main_forward(self.main, idx)  # (B, T, V), (B, T, d_model)
        T = idx.shape[1]
        positions = torch.arange(T, device=idx.device)  # (T,)
        trunk = hidden if trunk_gradient else hidden.detach()
        h, depth_logits = trunk, []
        for k, head in enumerate(self.heads, start=1):
            if self.settings.form == "parallel":
                h = head(trunk, positions)  # (B, T, d_model)
            elif T - k > 0:  # depth k at positions 0 .. T-1-k combines h_{k-1} there with Emb(t_{i+k})
                h = head(h[:, : T - k], self.embed(idx[:, k:], trunk_gradient), positions[: T - k])  # (B, T-k, d)
            else:
                h = trunk[:, :0]  # (B, 0, d_model): no position has its token t_{i+k} in idx
            depth_logits.append(self.head_logits(k, h, trunk_gradient))
        return logits, depth_logits

    def loss(self, idx, targets, trunk_gradient=True):
        """`mtp_loss` of this model on (input ids, next-token targets), both (B, T), with its loss_weight."""
        logits, depth_logits = self(idx, trunk_gradient=trunk_gradient)
        return mtp_loss(logits, depth_logits, targets, self.settings.loss_weight)


def mtp_targets(targets: torch.Tensor, depth: int) -> torch.Tensor:
    """Depth `depth`'s targets from next-token targets (B, T) (targets[:, i] = t_{i+1}): t_{i+1+k} = targets[:, i+k]."""
    return targets[:, depth:]  # (B, T - depth)


def mtp_loss(logits, depth_logits, targets, weight=0.3, return_parts=False):
    """Next-token cross entropy + weight · mean over depths of depth k's cross entropy against t_{i+1+k}.

    logits (B, T, V); depth_logits: depth k's (B, >= T - k, V) first; targets (B, T) with targets[:, i] = t_{i+1}.
    Depth k is scored at positions 0 .. T-1-k, whose target t_{i+1+k} lies in the window. With
    return_parts=True returns (total, next-token loss, [depth losses]).
    """
    number("weight", weight, low=0, low_open=False)
    T = targets.shape[1]
    next_token = lm_loss(logits, targets)
    depth_losses = []
    for k, depth in enumerate(depth_logits, start=1):
        if T - k < 1:
            raise ValueError(f"depth {k} needs windows of more than {k} tokens to have a target; got T={T}.")
        if depth.shape[1] < T - k:
            raise ValueError(f"depth {k}'s logits cover {depth.shape[1]} positions, fewer than the T - k = {T - k} "
                             "that have a target.")
        depth_losses.append(lm_loss(depth[:, : T - k], mtp_targets(targets, k)))  # (B, T-k, V) vs (B, T-k)
    total = next_token + weight * torch.stack(depth_losses).mean() if depth_losses else next_token
    return (total, next_token, depth_losses) if return_parts else total


@dataclass
class MTPStats(SpeculativeStats):
    """`SpeculativeStats` of self-speculative decoding, plus per-depth counts and the drafts of every round."""

    drafted_at_depth: list = field(default_factory=list)  # entry k-1: rounds in which depth k drafted a token
    accepted_at_depth: list = field(default_factory=list)  # entry k-1: rounds in which depth k's draft was kept
    drafts: list = field(default_factory=list, repr=False)  # each round's drafted ids, a list of ints

    @property
    def acceptance_by_depth(self) -> list:
        """For each depth k, accepted / drafted (a depth-k draft counts as kept only if depths < k were kept)."""
        return [a / d if d else float("nan") for a, d in zip(self.accepted_at_depth, self.drafted_at_depth)]

    def merge(self, other: MTPStats) -> MTPStats:
        """The counts of two runs added up (for acceptance over several prompts)."""
        n = max(len(self.drafted_at_depth), len(other.drafted_at_depth))

        def pad(counts):
            return counts + [0] * (n - len(counts))

        return MTPStats(self.rounds + other.rounds, self.drafted + other.drafted, self.accepted + other.accepted,
                        self.accepted_per_round + other.accepted_per_round,
                        [a + b for a, b in zip(pad(self.drafted_at_depth), pad(other.drafted_at_depth))],
                        [a + b for a, b in zip(pad(self.accepted_at_depth), pad(other.accepted_at_depth))],
                        self.drafts + other.drafts)


def _pick(distribution, temperature, generator):
    """One token id (a 0-d tensor) from a distribution (vocab,): its argmax when greedy, else a sample."""
    if temperature == 0:
        return distribution.argmax()
    return torch.multinomial(distribution, 1, generator=generator)[0]


class _Drafter:
    """The heads' KV caches and the hidden states they need, kept across rounds of self-speculative decoding.

    Invariant between rounds: depth k's cache holds exactly the positions whose inputs are all known tokens,
    and `known[k]` (1, n, d_model) holds depth k's hidden states at those positions (known[0]: the main model's).
    """

    def __init__(self, model: MTPModel, depths: int, capacity: int):
        self.model, self.depths = model, depths
        self.caches = [_new_block_cache(head.block, model.config, 1) for head in model.heads[:depths]]
        for cache in self.caches:
            if not cache.can_truncate:
                raise ValueError("the MTP heads' blocks use caches that cannot roll back "
                                 f"({type(cache[0]).__name__}); use a layer with full keys/values.")
            cache.reserve(capacity)
        self.known = [None] * depths  # known[k]: (1, n_k, d_model); known[0] is set by `add_main_hidden`

    def add_main_hidden(self, hidden):
        """Append the main model's hidden states (1, n, d_model) at the next positions (all inputs accepted)."""
        self.known[0] = hidden if self.known[0] is None else torch.cat((self.known[0], hidden), dim=1)

    def draft(self, out, n_draft, temperature, generator):
        """Draft `n_draft` tokens after `out` (1, L): the main model's hidden state is known up to position L - 2.

        Returns (drafted (n_draft,), q (n_draft, vocab)): depth k's draft at position L - 2 predicts t_{L-1+k}.
        """
        last = out.shape[1] - 2  # the last position whose main hidden state is known; t_{last+1} is pending
        assert self.known[0].shape[1] == last + 1, "the main model's hidden states must reach position L - 2"
        sequential = self.model.settings.form == "sequential"
        seq, drafted, q = out, [], []
        before, before_start = self.known[0], 0  # depth k-1's hidden states at positions before_start .. last
        for k in range(1, n_draft + 1):
            cache = self.caches[k - 1]
            start = cache.length  # depth k's positions start .. last are new this round
            positions = torch.arange(start, last + 1, device=out.device)  # (n_new,)
            head = self.model.heads[k - 1]
            if sequential:
                h_in = before[:, start - before_start:]  # (1, n_new, d_model) depth k-1 at start .. last
                tokens = seq[:, start + k: last + k + 1]  # (1, n_new) t_{i+k}: known tokens, then drafts
                h = head(h_in, self.model.embed(tokens), positions, cache=cache[0])  # (1, n_new, d_model)
            else:
                h = head(self.known[0][:, start:], positions, cache=cache[0])  # every input is known
            q.append(probabilities(self.model.head_logits(k, h[0, -1]), temperature))  # (vocab,)
            drafted.append(_pick(q[-1], temperature, generator))
            seq = torch.cat((seq, drafted[-1].view(1, 1)), dim=1)
            if sequential:
                # positions 0 .. last+1-k read only known tokens (t_{i+k} <= t_{last+1}); the rest read drafts
                n_known = max(0, last + 2 - k)
                keep_from = self.caches[k].length if k < self.depths else start  # what depth k+1 will read
                keep_from = min(keep_from, start)
                if k < self.depths:
                    before = torch.cat((self.known[k][:, keep_from:start], h), dim=1) if self.known[k] is not None \
                        else h
                    before_start = keep_from if self.known[k] is not None else start
                    new_known = h[:, : n_known - start]
                    self.known[k] = new_known if self.known[k] is None else torch.cat((self.known[k], new_known), 1)
                cache.truncate(n_known)
        return torch.stack(drafted), torch.stack(q)


def _check_mtp_inputs(model, idx, max_new_tokens, depths, temperature):
    check_decoding_arguments(idx, max_new_tokens, temperature)
    if not isinstance(model, MTPModel):
        raise TypeError(f"model must be an llmfs.mtp.MTPModel (a Transformer with MTP heads), "
                        f"got {type(model).__name__}.")
    check_one_sequence_fits(idx, max_new_tokens, model.config.context_length)
    n = model.settings.depths
    if not isinstance(depths, int) or isinstance(depths, bool) or not 1 <= depths <= n:
        raise ValueError(f"depths (tokens drafted per round) must be an integer in [1, {n}] (the model's MTP "
                         f"depths), got {depths!r}.")


@torch.no_grad()
def mtp_speculative_generate(model: MTPModel, idx, max_new_tokens, depths=None, temperature=0.0, generator=None,
                             return_stats=False):
    """Append `max_new_tokens` tokens to `idx` (1, T) with the model's own MTP heads drafting `depths` per round.

    temperature=0: the same tokens as `generate(model.main, idx, max_new_tokens)`; otherwise samples distributed as
    the main model's (the exact acceptance rule of `speculative.accept_or_correct`). The prompt is prefilled once;
    each round verifies the pending token and the drafts in one cached pass, and rolls back rejected ones.
    With return_stats=True returns (ids, MTPStats); `rounds` counts verification passes (after the prefill).
    """
    depths = model.settings.depths if depths is None and isinstance(model, MTPModel) else depths
    _check_mtp_inputs(model, idx, max_new_tokens, depths, temperature)
    stats = MTPStats(drafted_at_depth=[0] * depths, accepted_at_depth=[0] * depths)
    goal = idx.shape[1] + max_new_tokens
    out = idx.long()
    was_training = model.training
    model.eval()
    try:
        main_cache = model.main.new_cache(1)
        if not main_cache.can_truncate:
            raise ValueError(f"the main model has layers whose caches cannot roll back "
                             f"({', '.join(sorted({type(c).__name__ for c in main_cache.layers}))}); "
                             "self-speculative decoding needs full key/value caches.")
        main_cache.reserve(goal + depths + 1)
        drafter = _Drafter(model, depths, goal + depths + 1)
        if max_new_tokens:  # prefill: every prompt token once; the main model's next token is the first new one
            logits, hidden = main_forward(model.main, out, cache=main_cache)  # (1, T, V), (1, T, d_model)
            drafter.add_main_hidden(hidden)
            first = _pick(probabilities(logits[0, -1], temperature), temperature, generator)
            out = torch.cat((out, first.view(1, 1)), dim=1)
        while out.shape[1] < goal:
            n_draft = min(depths, goal - out.shape[1])  # never draft past the end
            drafted, q = drafter.draft(out, n_draft, temperature, generator)  # (n_draft,), (n_draft, vocab)
            # the main model: the pending token and all drafts in one pass -> n_draft + 1 distributions
            logits, hidden = main_forward(model.main, torch.cat((out[:, -1:], drafted[None]), dim=1), main_cache)
            p = probabilities(logits[0], temperature)  # (n_draft + 1, vocab)
            n_accepted, next_token = accept_or_correct(p, q, drafted, generator)
            drafter.add_main_hidden(hidden[:, : n_accepted + 1])  # states whose inputs were all accepted
            out = torch.cat((out, drafted[None, :n_accepted], next_token.view(1, 1)), dim=1)
            main_cache.truncate(out.shape[1] - 1)  # keep the accepted drafts; the new token is pending
            stats.rounds += 1
            stats.drafted += n_draft
            stats.accepted += n_accepted
            stats.accepted_per_round.append(n_accepted)
            stats.drafts.append(drafted.tolist())
            for k in range(n_draft):
                stats.drafted_at_depth[k] += 1
                stats.accepted_at_depth[k] += int(k < n_accepted)
    finally:
        model.train(was_training)
    out = out[:, :goal].to(idx.dtype)
    return (out, stats) if return_stats else out


# --- the experiment: a small character-level model trained with and without the MTP loss ---


@torch.no_grad()
def expected_acceptance(model: MTPModel, idx, temperature: float = 0.0) -> list:
    """For each depth k, the mean over positions i of Σₓ min(p(x), qₖ(x)) on real text idx (B, T): p is the main
    model's distribution at position i + k, qₖ depth k's at position i (both at `temperature`).

    That is the exact rule's chance of accepting depth k's draft if decoding followed this text; at temperature 0
    it is how often depth k's argmax equals the main model's argmax (greedy self-speculation).
    """
    number("temperature", temperature, low=0, low_open=False)
    was_training = model.training
    model.eval()
    try:
        logits, depth_logits = model(idx)  # (B, T, V), depth k: (B, >= T - k, V)
    finally:
        model.train(was_training)
    T, out = idx.shape[1], []
    for k, depth in enumerate(depth_logits, start=1):
        p = probabilities(logits[:, k:], temperature)  # (B, T - k, V): the main model at i + k
        q = probabilities(depth[:, : T - k], temperature)  # (B, T - k, V): depth k at i
        out.append(float(torch.minimum(p, q).sum(-1).mean()))
    return out


@dataclass
class MTPRun:
    """One training run: next-token validation loss, and how well the heads draft for the main model."""

    seed: int
    with_mtp_loss: bool  # True: the MTP loss trained the whole model; False: the heads learned on a detached trunk
    val_loss: float  # the main model's next-token loss on the validation windows (nats per character)
    val_depth_loss: list  # each depth's cross entropy on the validation windows (nats per character)
    agreement: list  # per depth, `expected_acceptance` at temperature 0 on the validation windows (greedy)
    expected_acceptance: list  # per depth, `expected_acceptance` at temperature 1 on the validation windows
    acceptance_rate: float  # accepted drafts / drafts: sampled (T = 1) self-speculative decoding, exact rule
    tokens_per_round: float  # tokens emitted per verification pass in that decoding
    seconds: float
    model: MTPModel | None = field(default=None, repr=False)  # the trained model, in eval mode


def experiment_config(vocab_size: int, context_length: int = 32, d_model: int = 64, n_layers: int = 2) -> ModelConfig:
    """The small Llama-style model of the experiment (RoPE, SwiGLU, RMSNorm, GQA), at character vocabulary."""
    from . import zoo

    return zoo.tiny("llama3-8b", vocab_size=vocab_size, context_length=context_length, d_model=d_model,
                    n_layers=n_layers)


def train_run(seed=0, with_mtp_loss=True, steps=200, depths=2, form="sequential", loss_weight=0.3, batch_size=16,
              context_length=32, lr=3e-3, max_tokens=200_000, eval_batches=16, prompts=8, prompt_tokens=8,
              new_tokens=24, device="cpu", threads=1) -> MTPRun:
    """Train a tiny character-level model with MTP heads on Shakespeare for `steps` AdamW steps and measure it.

    with_mtp_loss=True: loss = next-token loss + loss_weight · MTP loss, through the whole model.
    with_mtp_loss=False (the baseline): the heads learn from a detached trunk, so the main model trains exactly
    as a plain model would. `threads`: torch's CPU threads for the run, restored after (None: leave as is); a
    model this small gains nothing from more, and a second thread on a busy machine made one run 8x slower.
    """
    if threads is not None:
        positive_int("threads", threads)
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _train_run(seed, with_mtp_loss, steps, depths, form, loss_weight, batch_size, context_length, lr,
                          max_tokens, eval_batches, prompts, prompt_tokens, new_tokens, device)
    finally:
        torch.set_num_threads(previous_threads)


def _train_run(seed, with_mtp_loss, steps, depths, form, loss_weight, batch_size, context_length, lr, max_tokens,
               eval_batches, prompts, prompt_tokens, new_tokens, device) -> MTPRun:
    """`train_run` itself, once its thread count is set."""
    from .datasets import make_loaders
    from .tokenizer import get_tokenizer

    boolean("with_mtp_loss", with_mtp_loss)
    positive_int("steps", steps)
    begin = time.perf_counter()
    tokenizer = get_tokenizer("char")
    set_seed(seed)
    model = MTPModel(experiment_config(tokenizer.n_vocab, context_length),
                     MTP(depths=depths, form=form, loss_weight=loss_weight)).to(device)
    train_loader, val_loader = make_loaders(tokenizer, context_length, batch_size, max_tokens=max_tokens, seed=seed)
    optimizer = torch.optim.AdamW(_param_groups(model, 0.1), lr=lr)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(  # linear warm-up, then cosine decay to 0
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    batches = iter(())
    model.train()
    for _ in range(steps):
        batch = next(batches, None)
        if batch is None:  # a new epoch
            batches = iter(train_loader)
            batch = next(batches)
        inputs, targets = (t.to(device) for t in batch)  # (B, T), (B, T)
        loss = model.loss(inputs, targets, trunk_gradient=with_mtp_loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for part in (model.main, model.heads):  # clipped apart, so the heads' gradient cannot rescale the trunk's
            torch.nn.utils.clip_grad_norm_(part.parameters(), 1.0)
        optimizer.step()
        schedule.step()
    model.eval()
    with torch.no_grad():
        parts, agreement, sampled, n = [], [], [], 0
        for inputs, targets in itertools.islice(val_loader, eval_batches):
            inputs, targets = inputs.to(device), targets.to(device)  # (B, T), (B, T)
            _, next_token, depth_losses = mtp_loss(*model(inputs), targets, return_parts=True)
            parts.append(torch.stack([next_token, *depth_losses]) * len(inputs))
            agreement.append(torch.tensor(expected_acceptance(model, inputs, 0.0)) * len(inputs))
            sampled.append(torch.tensor(expected_acceptance(model, inputs, 1.0)) * len(inputs))
            n += len(inputs)
        losses, agreement, sampled = ((torch.stack(x).sum(0) / n).tolist() for x in (parts, agreement, sampled))
    val_ids = val_loader.dataset.ids
    stats = MTPStats(drafted_at_depth=[0] * depths, accepted_at_depth=[0] * depths)
    generator = torch.Generator().manual_seed(seed)
    gap = max(1, (len(val_ids) - prompt_tokens) // prompts)
    for i in range(prompts):
        prompt = val_ids[i * gap: i * gap + prompt_tokens][None].to(device)  # (1, prompt_tokens)
        _, run_stats = mtp_speculative_generate(model, prompt, new_tokens, temperature=1.0, generator=generator,
                                                return_stats=True)
        stats = stats.merge(run_stats)
    return MTPRun(seed, with_mtp_loss, losses[0], losses[1:], agreement, sampled, stats.acceptance_rate,
                  stats.tokens_per_round, time.perf_counter() - begin, model)


def train_compare(seeds=(0, 1, 2), **settings) -> list[MTPRun]:
    """`train_run` without and with the MTP loss for each seed: [baseline seed 0, MTP seed 0, baseline seed 1, ...]."""
    return [train_run(seed, with_mtp_loss=use, **settings) for seed in seeds for use in (False, True)]

