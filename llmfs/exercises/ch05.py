"""Exercises of chapter 5 (Sliding windows and attention sinks): reference solutions and their random inputs."""

import torch

from llmfs.exercises import Exercise, register


def _int(gen, low, high):
    """A random integer in [low, high] drawn from the seeded generator."""
    return int(torch.randint(low, high + 1, (1,), generator=gen))


# --- the band mask -----------------------------------------------------------------------------------


def band_mask(T, window):
    """(T, T) boolean mask: query i sees key j when 0 <= i - j < window."""
    distance = torch.arange(T)[:, None] - torch.arange(T)[None, :]
    return (distance >= 0) & (distance < window)


register(Exercise(
    id="ch05.band_mask",
    summary="The sliding-window (band) mask: each query sees itself and the window - 1 tokens before it.",
    reference=band_mask,
    cases=lambda gen: [(1, 1), (6, 1), (6, 3), (5, 9)] + [(_int(gen, 1, 40), _int(gen, 1, 20)) for _ in range(4)],
))


# --- the ring-buffer slot ----------------------------------------------------------------------------


def ring_slot(position, window, sink_tokens):
    """The cache slot of the token at `position`: sink tokens first, the others around a ring of `window`."""
    if position < sink_tokens:
        return position
    return sink_tokens + (position - sink_tokens) % window


register(Exercise(
    id="ch05.ring_slot",
    summary="Where a ring-buffer cache with sink tokens keeps the token at a given position.",
    reference=ring_slot,
    cases=lambda gen: [(0, 4, 0), (4, 4, 0), (9, 4, 0), (1, 4, 2), (2, 4, 2), (7, 4, 2)]
    + [(_int(gen, 0, 10_000), _int(gen, 1, 4096), _int(gen, 0, 8)) for _ in range(4)],
))


# --- how far back the last token can see ---------------------------------------------------------------


def visible_tokens(pattern, window, T):
    """How many of T tokens the last token can draw information from, through layers `pattern` ("L" a sliding
    window of `window` tokens, "G" global attention): each local layer reaches window - 1 tokens further back."""
    if "G" in pattern:
        return T
    return min(T, pattern.count("L") * (window - 1) + 1)


register(Exercise(
    id="ch05.visible_tokens",
    summary="The receptive field of the last token through a stack of local and global layers.",
    reference=visible_tokens,
    cases=lambda gen: [("L", 4, 100), ("LLLL", 4, 100), ("LLG", 4, 100), ("LL", 64, 100), ("LLLLLG" * 10, 1024, 131072)]
    + [("".join("LG"[_int(gen, 0, 4) == 0] for _ in range(_int(gen, 1, 8))), _int(gen, 1, 50), _int(gen, 1, 500))
       for _ in range(4)],
))


# --- cache bytes of a local : global stack ---------------------------------------------------------------


def interleaved_cache_bytes(n_local, n_global, window, n_kv_heads, head_dim, seq_len, bytes_per_value):
    """Bytes of one sequence's KV cache: local layers hold at most `window` tokens, global ones all of them."""
    per_token_layer = 2 * n_kv_heads * head_dim * bytes_per_value
    return per_token_layer * (n_local * min(seq_len, window) + n_global * seq_len)


register(Exercise(
    id="ch05.interleaved_cache_bytes",
    summary="KV-cache bytes of a model mixing sliding-window and global layers (Gemma 3 27B at 128k).",
    reference=interleaved_cache_bytes,
    cases=lambda gen: [(52, 10, 1024, 16, 128, 131072, 2), (52, 10, 1024, 16, 128, 500, 2), (0, 32, 4096, 8, 128, 8192, 2)]
    + [(_int(gen, 0, 60), _int(gen, 0, 20), 2 ** _int(gen, 7, 13), 2 ** _int(gen, 0, 5), 2 ** _int(gen, 5, 8),
        _int(gen, 1, 200_000), 2 ** _int(gen, 0, 2)) for _ in range(4)],
))


# --- softmax with a sink -------------------------------------------------------------------------------


def sink_softmax(scores, sink):
    """Softmax over the last axis of `scores` (..., T) with one more term exp(sink) in the denominator,
    where `sink` has the shape of scores without its last axis. The weights sum to less than 1."""
    full = torch.cat((scores, sink.unsqueeze(-1)), dim=-1)
    return torch.softmax(full, dim=-1)[..., :-1]


def _sink_cases(gen):
    cases = []
    for shape in ((5,), (2, 7), (3, 4, 6)):
        scores = torch.randn(shape, generator=gen) * 3
        cases.append((scores, torch.randn(shape[:-1], generator=gen) * 3))
    cases.append((torch.tensor([1000.0, 999.0]), torch.tensor(1000.0)))  # large logits: stay finite
    return cases


register(Exercise(
    id="ch05.sink_softmax",
    summary="gpt-oss's softmax with a learned sink: one extra term in the denominator.",
    reference=sink_softmax,
    cases=_sink_cases,
))


# --- the chunked mask (Llama 4) --------------------------------------------------------------------------


def chunked_mask(T, chunk):
    """(T, T) boolean mask of chunked attention (Llama 4's local layers): query i sees key j when j <= i and
    both lie in the same block of `chunk` consecutive positions (i // chunk == j // chunk)."""
    positions = torch.arange(T)
    same_chunk = (positions[:, None] // chunk) == (positions[None, :] // chunk)
    return same_chunk & (positions[None, :] <= positions[:, None])


register(Exercise(
    id="ch05.chunked_mask",
    summary="Llama 4's chunked attention mask: causal within fixed blocks, nothing across block borders.",
    reference=chunked_mask,
    cases=lambda gen: [(1, 1), (6, 1), (6, 3), (7, 3), (5, 9)] + [(_int(gen, 1, 40), _int(gen, 1, 20)) for _ in range(4)],
))
