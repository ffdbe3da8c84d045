"""Recurrent encoder-decoders, without and with additive attention (chapter 1).

The plain model (Sutskever et al. 2014; Cho et al. 2014) squeezes the whole source into the encoder's
final hidden state, a vector of fixed size, and the decoder must unfold the target from that vector alone.
The attention model (Bahdanau et al. 2015) lets the decoder look back at every encoder state at every
step, through a learned, soft alignment: the attention weights.

Shapes in comments: B batch, T source length, S target length, E embedding size, H hidden size,
A attention size, V vocabulary size.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from tqdm import tqdm

from llmfs.tasks import BOS, PAD, RecallTask
from llmfs.training import History


def padding_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B, max_len) boolean mask: True at real tokens, False at padding, from per-row lengths (B,)."""
    positions = torch.arange(max_len, device=lengths.device)  # (T,)
    return positions[None, :] < lengths[:, None]               # (B, T)


class Encoder(nn.Module):
    """Embed the source tokens and read them left to right with a GRU.

    Returns every hidden state (the "memory" attention can look at) and the final one (the summary that
    a plain decoder must make do with).
    """

    def __init__(self, vocab_size: int, d_embed: int, d_hidden: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_embed, padding_idx=PAD)
        self.gru = nn.GRU(d_embed, d_hidden, batch_first=True)

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor):
        """src (B, T), src_lengths (B,) -> states (B, T, H) with zeros at padding, final (B, H)."""
        x = self.embed(src)  # (B, T, E)
        # Packing makes the GRU stop at each row's true length, so `final` is the state after the
        # last real token, not after a run of padding.
        packed = pack_padded_sequence(x, src_lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_states, final = self.gru(packed)  # final: (1, B, H)
        states, _ = pad_packed_sequence(packed_states, batch_first=True, total_length=src.shape[1])
        return states, final[0]  # (B, T, H), (B, H)


class AdditiveAttention(nn.Module):
    """Bahdanau's additive attention: score(s, h_j) = v^T tanh(W_q s + W_k h_j), softmax over j.

    The query s is the decoder's state, the keys h_j are the encoder's states, and the context is the
    weighted average of the encoder states. Padding positions get score -inf, hence weight exactly 0.
    """

    def __init__(self, d_query: int, d_key: int, d_attn: int):
        super().__init__()
        self.W_q = nn.Linear(d_query, d_attn, bias=False)
        self.W_k = nn.Linear(d_key, d_attn, bias=False)
        self.v = nn.Linear(d_attn, 1, bias=False)

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        mask: torch.Tensor | None = None,
        projected_keys: torch.Tensor | None = None,
    ):
        """query (B, Hq), keys (B, T, Hk), mask (B, T) True at real tokens -> context (B, Hk), weights (B, T).

        `projected_keys` is W_k(keys), (B, T, A): a decoder attends to the same keys at every step, so it
        computes this once per sequence and passes it in; left out, it is computed here.
        """
        if query.dim() != 2 or keys.dim() != 3 or query.shape[0] != keys.shape[0]:
            raise ValueError(
                f"expected query (B, Hq) and keys (B, T, Hk) with the same B, "
                f"got {tuple(query.shape)} and {tuple(keys.shape)}"
            )
        if projected_keys is None:
            projected_keys = self.W_k(keys)                                  # (B, T, A)
        features = torch.tanh(self.W_q(query)[:, None, :] + projected_keys)  # (B, T, A)
        scores = self.v(features).squeeze(-1)                                 # (B, T)
        if mask is not None:
            if mask.shape != scores.shape:
                raise ValueError(f"mask must have shape {tuple(scores.shape)}, got {tuple(mask.shape)}")
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)                 # (B, T), each row sums to 1
        context = torch.bmm(weights[:, None, :], keys)[:, 0]    # (B, Hk)
        return context, weights


class Decoder(nn.Module):
    """The plain decoder: a GRU that starts from the encoder's final state and never sees the source again."""

    def __init__(self, vocab_size: int, d_embed: int, d_hidden: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_embed, padding_idx=PAD)
        self.gru = nn.GRU(d_embed, d_hidden, batch_first=True)
        self.out = nn.Linear(d_hidden, vocab_size)

    def forward(self, tgt_in, hidden, memory=None, memory_mask=None):
        """tgt_in (B, S), hidden (B, H) -> logits (B, S, V), new hidden (B, H), weights None.

        `memory` and `memory_mask` (the encoder states) are accepted and ignored, so both decoders share
        one interface; ignoring them is exactly this model's bottleneck.
        """
        states, hidden = self.gru(self.embed(tgt_in), hidden[None])  # (B, S, H), (1, B, H)
        return self.out(states), hidden[0], None


class AttentionDecoder(nn.Module):
    """Bahdanau's decoder: before each step it attends over the encoder states and reads their average.

    Step t: c_t, a_t = attention(s_{t-1}, encoder states); s_t = GRUCell([embed(y_{t-1}); c_t], s_{t-1});
    logits_t = Linear([s_t; c_t]).
    """

    def __init__(self, vocab_size: int, d_embed: int, d_hidden: int, d_attn: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_embed, padding_idx=PAD)
        self.attention = AdditiveAttention(d_hidden, d_hidden, d_attn)
        self.cell = nn.GRUCell(d_embed + d_hidden, d_hidden)
        self.out = nn.Linear(2 * d_hidden, vocab_size)

    def forward(self, tgt_in, hidden, memory, memory_mask):
        """tgt_in (B, S), hidden (B, H), memory (B, T, H), memory_mask (B, T) -> logits (B, S, V), hidden, weights (B, S, T)."""
        x = self.embed(tgt_in)                         # (B, S, E)
        projected_keys = self.attention.W_k(memory)    # (B, T, A), the same at every step
        states, contexts, weights = [], [], []
        for t in range(tgt_in.shape[1]):
            context, a = self.attention(hidden, memory, memory_mask, projected_keys)  # (B, H), (B, T)
            hidden = self.cell(torch.cat([x[:, t], context], dim=-1), hidden)        # (B, H)
            states.append(hidden)
            contexts.append(context)
            weights.append(a)
        # The output layer needs no recurrence, so it runs once on all steps together.
        features = torch.cat([torch.stack(states, dim=1), torch.stack(contexts, dim=1)], dim=-1)  # (B, S, 2H)
        return self.out(features), hidden, torch.stack(weights, dim=1)


class Seq2Seq(nn.Module):
    """Encoder plus decoder: teacher-forced `forward` for training, `greedy_decode` for inference."""

    def __init__(self, encoder: Encoder, decoder: Decoder | AttentionDecoder):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    @property
    def uses_attention(self) -> bool:
        return isinstance(self.decoder, AttentionDecoder)

    def _encode(self, src, src_lengths):
        if src.dim() != 2 or src_lengths.shape != src.shape[:1]:
            raise ValueError(
                f"expected src (B, T) and src_lengths (B,), got {tuple(src.shape)} and {tuple(src_lengths.shape)}"
            )
        if (src_lengths < 1).any() or (src_lengths > src.shape[1]).any():
            raise ValueError(f"src_lengths must lie in [1, {src.shape[1]}], got {src_lengths.tolist()}")
        memory, final = self.encoder(src, src_lengths)      # (B, T, H), (B, H)
        return memory, final, padding_mask(src_lengths, src.shape[1])

    def forward(self, src, src_lengths, tgt_in):
        """Teacher forcing: src (B, T), src_lengths (B,), tgt_in (B, S) -> logits (B, S, V), weights (B, S, T) or None."""
        memory, hidden, mask = self._encode(src, src_lengths)
        logits, _, weights = self.decoder(tgt_in, hidden, memory, mask)
        return logits, weights

    @torch.no_grad()
    def greedy_decode(self, src, src_lengths, max_steps: int, bos: int = BOS):
        """Feed back the most likely token at each step -> tokens (B, max_steps), weights (B, max_steps, T) or None."""
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        memory, hidden, mask = self._encode(src, src_lengths)
        token = torch.full((src.shape[0], 1), bos, dtype=torch.long, device=src.device)  # (B, 1)
        tokens, weights = [], []
        for _ in range(max_steps):
            logits, hidden, a = self.decoder(token, hidden, memory, mask)  # (B, 1, V)
            token = logits.argmax(dim=-1)                                  # (B, 1)
            tokens.append(token)
            weights.append(a)
        weights = None if weights[0] is None else torch.cat(weights, dim=1)
        return torch.cat(tokens, dim=1), weights


def build_seq2seq(
    vocab_size: int, *, attention: bool, d_embed: int = 32, d_hidden: int = 64, d_attn: int = 64
) -> Seq2Seq:
    """A Seq2Seq with a plain Decoder (attention=False) or an AttentionDecoder (attention=True)."""
    encoder = Encoder(vocab_size, d_embed, d_hidden)
    if attention:
        decoder = AttentionDecoder(vocab_size, d_embed, d_hidden, d_attn)
    else:
        decoder = Decoder(vocab_size, d_embed, d_hidden)
    return Seq2Seq(encoder, decoder)


def train_seq2seq(
    model: Seq2Seq,
    task: RecallTask,
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 5e-3,
    seed: int = 0,
    device: str = "cpu",
    clip: float = 1.0,
    log_every: int = 20,
    progress: bool = True,
    desc: str | None = None,
) -> History:
    """Train on fresh random batches with Adam and teacher forcing; return the loss curve as a `History`.

    The batches come from a generator seeded with `seed`, so the same initial model, seed and device
    repeat the same run (seed the model's initialisation with `llmfs.set_seed` before building it).
    Padding positions are left out of the cross-entropy. `History.train_loss` holds the mean loss over
    each `log_every` steps, `History.step_loss` every step's loss. `progress=False` hides the progress bar.
    """
    for name, value in (("steps", steps), ("batch_size", batch_size), ("log_every", log_every)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    history = History()
    tokens_seen = 0
    name = desc or ("attention" if model.uses_attention else "plain")
    bar = tqdm(range(1, steps + 1), desc=name, disable=not progress, mininterval=1.0)
    for step in bar:
        batch = task.batch(batch_size, generator=gen).to(device)
        logits, _ = model(batch.src, batch.src_lengths, batch.tgt_in)  # (B, S, V)
        loss = F.cross_entropy(logits.flatten(0, 1), batch.tgt_out.flatten(), ignore_index=PAD)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        history.step_loss.append(loss.item())
        tokens_seen += int((batch.tgt_out != PAD).sum())
        if step % log_every == 0 or step == steps:
            window = history.step_loss[-(step - (history.steps[-1] if history.steps else 0)) :]
            history.steps.append(step)
            history.train_loss.append(sum(window) / len(window))
            history.tokens_seen.append(tokens_seen)
            bar.set_postfix(loss=f"{history.train_loss[-1]:.3f}", refresh=False)
    model.eval()
    return history


@torch.no_grad()
def accuracy_by_length(
    model: Seq2Seq, task: RecallTask, lengths, *, n_per_length: int = 256, seed: int = 1234, device: str = "cpu"
) -> dict[int, float]:
    """Greedy-decode `n_per_length` fresh sequences of each length; return {length: token accuracy}.

    Token accuracy is the fraction of target symbols (EOS included) predicted correctly at their position.
    """
    model.to(device).eval()
    gen = torch.Generator().manual_seed(seed)
    result = {}
    for length in lengths:
        batch = task.batch(n_per_length, length=int(length), generator=gen).to(device)
        tokens, _ = model.greedy_decode(batch.src, batch.src_lengths, max_steps=length + 1)  # (B, L+1)
        result[int(length)] = (tokens == batch.tgt_out).float().mean().item()
    return result


def sequence_bits(length: int, n_symbols: int) -> float:
    """Information in a random sequence: length * log2(n_symbols) bits, all of which the encoder must keep."""
    return length * math.log2(n_symbols)
