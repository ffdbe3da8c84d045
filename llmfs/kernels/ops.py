"""Launchers: check the inputs, allocate the output, pick block sizes and launch a kernel on its grid.

The kernels module (and with it triton) is imported on the first launch, so `import llmfs.kernels` works
without triton. Block sizes are small in Triton's interpreter, where every program runs in Python, and
GPU-sized otherwise.
"""

import math

import torch

from .runtime import KernelInputError, check_inputs, interpreting

MAX_ROW = 65536                         # the row kernels hold a whole row on chip
HEAD_DIMS = (16, 32, 64, 128)           # tl.dot needs power-of-two tiles of at least 16


def _kernels():
    """The module of @triton.jit kernels (imports triton the first time)."""
    from . import triton_kernels

    return triton_kernels


def launch(kernel, grid, *args, **meta):
    """Run `kernel[grid](*args, **meta)`. A body still raising NotImplementedError (an exercise stub)
    comes out as NotImplementedError, not wrapped in Triton's interpreter or compiler error."""
    try:
        return kernel[grid](*args, **meta)
    except NotImplementedError:
        raise
    except Exception as err:
        if isinstance(err.__cause__, NotImplementedError) or "raise NotImplementedError" in str(err):
            raise NotImplementedError(str(err)) from err
        raise


def _row_block(n_cols: int, kernel: str) -> int:
    """The block that holds a whole row: n_cols rounded up to a power of two."""
    if not 1 <= n_cols <= MAX_ROW:
        raise KernelInputError(f"{kernel}: rows of 1 to {MAX_ROW} elements are supported, got {n_cols}")
    return 1 << (n_cols - 1).bit_length()


def _row_warps(block: int) -> int:
    """Warps for a row kernel on a GPU: more threads for longer rows (the interpreter ignores it)."""
    return 4 if block <= 2048 else 8 if block <= 8192 else 16


def _power_of_two(value: int, name: str, kernel: str, minimum: int = 1) -> None:
    if value < minimum or value & (value - 1):
        raise KernelInputError(f"{kernel}: {name} must be a power of two >= {minimum}, got {value}")


def add(x: torch.Tensor, y: torch.Tensor, block: int | None = None) -> torch.Tensor:
    """x + y for two tensors of one shape, BLOCK elements per program."""
    kernels = _kernels()
    check_inputs("add", x=x, y=y)
    if x.shape != y.shape:
        raise KernelInputError(f"add: x and y must have one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    block = block or (64 if interpreting() else 1024)
    _power_of_two(block, "block", "add")
    out = torch.empty_like(x)
    n = x.numel()
    launch(kernels.add_kernel, (math.ceil(n / block),), x, y, out, n, BLOCK=block)
    return out


def softmax(x: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dimension, one row per program (fused: one read and one write of x)."""
    kernels = _kernels()
    check_inputs("softmax", x=x)
    block = _row_block(x.shape[-1] if x.dim() else 0, "softmax")
    out = torch.empty_like(x)
    rows = x.numel() // x.shape[-1]
    launch(kernels.softmax_kernel, (rows,), x, out, x.shape[-1], BLOCK=block, num_warps=_row_warps(block))
    return out


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """RMSNorm over the last dimension with a (d,) weight, one row per program."""
    kernels = _kernels()
    check_inputs("rms_norm", x=x, weight=weight)
    d = x.shape[-1] if x.dim() else 0
    if weight.shape != (d,):
        raise KernelInputError(f"rms_norm: weight must have shape ({d},) for rows of {d}, got {tuple(weight.shape)}")
    block = _row_block(d, "rms_norm")
    out = torch.empty_like(x)
    launch(kernels.rms_norm_kernel, (x.numel() // d,), x, weight, out, d, eps, BLOCK=block,
           num_warps=_row_warps(block))
    return out


def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE in the split-halves layout: x (..., seq, d), cos and sin (seq, d // 2), as llmfs.positions.apply_rope."""
    kernels = _kernels()
    check_inputs("rope", x=x, cos=cos, sin=sin)
    if x.dim() < 2 or x.shape[-1] % 2:
        raise KernelInputError(f"rope: x must be (..., seq, d) with d even, got {tuple(x.shape)}")
    seq, half = x.shape[-2], x.shape[-1] // 2
    for name, table in (("cos", cos), ("sin", sin)):
        if table.shape != (seq, half):
            raise KernelInputError(f"rope: {name} must have shape ({seq}, {half}), got {tuple(table.shape)}")
    out = torch.empty_like(x)
    block = _row_block(half, "rope")
    launch(kernels.rope_kernel, (x.numel() // (2 * half),), x, cos, sin, out, seq, half, BLOCK=block)
    return out


def matmul(a: torch.Tensor, b: torch.Tensor, block_m: int | None = None, block_n: int | None = None,
           block_k: int | None = None, group_m: int = 8) -> torch.Tensor:
    """a @ b for a (M, K) and b (K, N), tiled: one BLOCK_M x BLOCK_N tile of the result per program."""
    kernels = _kernels()
    check_inputs("matmul", a=a, b=b)
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0]:
        raise KernelInputError(f"matmul: needs a (M, K) and b (K, N), got {tuple(a.shape)} and {tuple(b.shape)}")
    small = interpreting()
    block_m, block_n, block_k = block_m or (16 if small else 128), block_n or (16 if small else 128), \
        block_k or (16 if small else 64)
    for name, value in (("block_m", block_m), ("block_n", block_n), ("block_k", block_k)):
        _power_of_two(value, name, "matmul", minimum=16)
    (M, K), N = a.shape, b.shape[1]
    c = torch.empty((M, N), dtype=a.dtype, device=a.device)
    grid = (math.ceil(M / block_m) * math.ceil(N / block_n),)
    launch(kernels.matmul_kernel, grid, a, b, c, M, N, K, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k,
           GROUP_M=group_m, num_warps=8 if block_m * block_n >= 128 * 128 else 4, num_stages=3)
    return c


def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True,
                    sm_scale: float | None = None, block_m: int | None = None,
                    block_n: int | None = None) -> torch.Tensor:
    """FlashAttention-2 forward: softmax(q k^T * sm_scale) v without storing the scores.

    q: (batch, n_heads, seq, head_dim); k, v: (batch, n_kv_heads, seq, head_dim) with n_kv_heads dividing
    n_heads (grouped-query attention); head_dim one of HEAD_DIMS. sm_scale defaults to 1 / sqrt(head_dim).
    """
    kernels = _kernels()
    check_inputs("flash_attention", q=q, k=k, v=v)
    if q.dim() != 4 or k.dim() != 4 or k.shape != v.shape:
        raise KernelInputError(
            f"flash_attention: needs q (batch, heads, seq, head_dim) and k, v (batch, kv_heads, seq, head_dim), "
            f"got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    batch, n_heads, seq, head_dim = q.shape
    if head_dim not in HEAD_DIMS:
        raise KernelInputError(f"flash_attention: head_dim must be one of {HEAD_DIMS}, got {head_dim}")
    n_kv_heads = k.shape[1]
    if k.shape[0] != batch or k.shape[2:] != (seq, head_dim) or n_heads % n_kv_heads:
        raise KernelInputError(
            f"flash_attention: k and v must be (batch={batch}, kv_heads, seq={seq}, head_dim={head_dim}) with "
            f"kv_heads dividing n_heads={n_heads}, got {tuple(k.shape)}"
        )
    small = interpreting()
    block_m = block_m or (16 if small else 128)
    block_n = block_n or (16 if small else 64)
    _power_of_two(block_m, "block_m", "flash_attention", minimum=16)
    _power_of_two(block_n, "block_n", "flash_attention", minimum=16)
    if block_m % block_n:
        raise KernelInputError(f"flash_attention: block_m ({block_m}) must be a multiple of block_n ({block_n})")
    sm_scale = 1.0 / math.sqrt(head_dim) if sm_scale is None else sm_scale
    out = torch.empty_like(q)
    grid = (math.ceil(seq / block_m), batch * n_heads)
    launch(kernels.flash_attention_kernel, grid, q, k, v, out, seq, n_heads, n_kv_heads, sm_scale * math.log2(math.e),
           HEAD_DIM=head_dim, BLOCK_M=block_m, BLOCK_N=block_n, CAUSAL=causal,
           num_warps=4 if head_dim <= 64 else 8, num_stages=3)
    return out
