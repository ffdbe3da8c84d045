"""Exercises of chapter 10 (GPU kernels in Triton): reference solutions and their random inputs.

The two kernel exercises run the reader's Triton kernel, in Triton's interpreter on a CPU.
"""

import math

import torch
import torch.nn.functional as F

from llmfs.exercises import Exercise, register


def _int(gen, low: int, high: int) -> int:
    """A random integer in [low, high)."""
    return int(torch.randint(low, high, (1,), generator=gen))


def reference_row_logsumexp(x: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(x, dim=-1)


def _logsumexp_cases(gen):
    cases = [(torch.randn(_int(gen, 1, 6), _int(gen, 1, 50), generator=gen),) for _ in range(3)]
    cases.append((100 * torch.randn(3, 17, generator=gen),))   # exp(100) overflows fp32: needs the max trick
    cases.append((torch.randn(2, 64, generator=gen),))          # a row that fills the block exactly
    return cases


def reference_swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return F.silu(gate) * up


def _swiglu_cases(gen):
    shapes = [(1,), (7,), (3, 37), (2, 4, 33), (130,)]
    return [(torch.randn(shape, generator=gen) * 3, torch.randn(shape, generator=gen)) for shape in shapes]


def reference_online_softmax_update(m, l, acc, scores, v):
    m_new = torch.maximum(m, scores.max(dim=-1).values)
    alpha = torch.exp(m - m_new)
    p = torch.exp(scores - m_new[:, None])
    return m_new, l * alpha + p.sum(dim=-1), acc * alpha[:, None] + p @ v


def _online_softmax_cases(gen):
    cases = []
    for first in (True, False, False, False):
        rows, n, d = _int(gen, 1, 6), _int(gen, 1, 9), _int(gen, 1, 9)
        scores, v = 3 * torch.randn(rows, n, generator=gen), torch.randn(n, d, generator=gen)
        if first:      # the state before any block: max -inf, sum 0, accumulator 0
            m, l, acc = torch.full((rows,), -math.inf), torch.zeros(rows), torch.zeros(rows, d)
        else:
            m = 3 * torch.randn(rows, generator=gen)
            l = torch.rand(rows, generator=gen) * 5 + 1
            acc = torch.randn(rows, d, generator=gen)
        cases.append((m, l, acc, scores, v))
    return cases


def reference_window_block_range(tile_m: int, block_m: int, block_n: int, window: int, seq_len: int):
    first_row = tile_m * block_m
    last_row = min(first_row + block_m, seq_len) - 1
    first_key = max(0, first_row - window + 1)          # query i sees keys i - window < j <= i
    return first_key // block_n, last_row // block_n + 1


def _window_cases(gen):
    cases = []
    for _ in range(8):
        block_n = 2 ** _int(gen, 3, 6)
        block_m = block_n * 2 ** _int(gen, 0, 3)
        seq_len = _int(gen, 1, 600)
        tile_m = _int(gen, 0, math.ceil(seq_len / block_m))
        cases.append((tile_m, block_m, block_n, _int(gen, 1, 300), seq_len))
    cases.append((3, 16, 16, 1, 64))                     # a window of one: the diagonal block only
    cases.append((0, 32, 16, 1000, 20))                  # a short ragged sequence
    return cases


def reference_tiled_matmul_bytes(m: int, n: int, k: int, block_m: int, block_n: int, bytes_per_element: int) -> int:
    programs = (m // block_m) * (n // block_n)
    elements = programs * (block_m * k + k * block_n) + m * n   # each program reads its panels; C written once
    return elements * bytes_per_element


def _tiled_bytes_cases(gen):
    cases = []
    for _ in range(6):
        block_m, block_n = 2 ** _int(gen, 4, 8), 2 ** _int(gen, 4, 8)
        cases.append((block_m * _int(gen, 1, 9), block_n * _int(gen, 1, 9), 16 * _int(gen, 1, 65),
                      block_m, block_n, [1, 2, 4][_int(gen, 0, 3)]))
    return cases


def reference_batch_for_compute_bound(d_in: int, d_out: int, bytes_per_element: int, ridge: float):
    weights = d_in * d_out
    denominator = 2 * weights - ridge * bytes_per_element * (d_in + d_out)
    if denominator <= 0:
        return None                                      # activations alone keep it under the ridge
    batch = max(1, math.floor(ridge * bytes_per_element * weights / denominator) - 1)
    while 2 * batch * weights < ridge * bytes_per_element * (weights + batch * (d_in + d_out)):
        batch += 1
    return batch


def _batch_cases(gen):
    cases = [(4096, 14336, 2, 295.4), (64, 64, 2, 295.4)]          # Llama 3 8B's up-projection; a tiny layer
    for _ in range(5):
        cases.append((64 * _int(gen, 1, 129), 64 * _int(gen, 1, 129), [1, 2, 4][_int(gen, 0, 3)],
                      float([50, 150, 295.4, 591][_int(gen, 0, 4)])))
    return cases


register(Exercise(
    id="ch10.row_logsumexp",
    summary="A Triton kernel: log(sum(exp(x))) of each row, rows of any length (a masked load).",
    reference=reference_row_logsumexp,
    cases=_logsumexp_cases,
))

register(Exercise(
    id="ch10.swiglu",
    summary="A fused Triton kernel: silu(gate) * up, elementwise, for tensors of any size.",
    reference=reference_swiglu,
    cases=_swiglu_cases,
))

register(Exercise(
    id="ch10.online_softmax_update",
    summary="Fold one block of scores and values into the running (max, sum, accumulator) of an online softmax.",
    reference=reference_online_softmax_update,
    cases=_online_softmax_cases,
))

register(Exercise(
    id="ch10.window_block_range",
    summary="Block skipping for sliding-window attention: the key blocks a query tile must visit.",
    reference=reference_window_block_range,
    cases=_window_cases,
))

register(Exercise(
    id="ch10.tiled_matmul_bytes",
    summary="Bytes a tiled matmul reads and writes in global memory, from its block sizes.",
    reference=reference_tiled_matmul_bytes,
    cases=_tiled_bytes_cases,
))

register(Exercise(
    id="ch10.batch_for_compute_bound",
    summary="The smallest batch at which a linear layer's arithmetic intensity reaches the ridge point.",
    reference=reference_batch_for_compute_bound,
    cases=_batch_cases,
))
