"""The Triton kernels of chapter 10. Importing this module imports triton (through `runtime.import_triton`,
which switches on Triton's interpreter where there is no GPU); `llmfs.kernels.ops` launches the kernels.

Each kernel is written for contiguous row-major tensors, so a row of `n_cols` elements starts at `row * n_cols`.
"""

from .runtime import import_triton

triton, tl = import_triton()


@triton.jit
def add_kernel(x_ptr, y_ptr, out_ptr, n_elements, BLOCK: tl.constexpr):
    """out = x + y: program `pid` adds elements [pid * BLOCK, (pid + 1) * BLOCK); the last block is masked."""
    pid = tl.program_id(axis=0)
    offsets = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n_elements                      # the last block may run past the end
    x = tl.load(x_ptr + offsets, mask=mask)
    y = tl.load(y_ptr + offsets, mask=mask)
    tl.store(out_ptr + offsets, x + y, mask=mask)


@triton.jit
def softmax_kernel(x_ptr, out_ptr, n_cols, BLOCK: tl.constexpr):
    """Softmax of one row per program: the row is read once and written once; max, exp and sum stay on chip."""
    row = tl.program_id(axis=0)
    cols = tl.arange(0, BLOCK)                      # BLOCK: n_cols rounded up to a power of two
    mask = cols < n_cols
    x = tl.load(x_ptr + row * n_cols + cols, mask=mask, other=float("-inf")).to(tl.float32)
    x = x - tl.max(x, axis=0)                       # exp never overflows; padding stays -inf
    numerator = tl.exp(x)                           # exp(-inf) = 0: padding adds nothing to the sum
    y = numerator / tl.sum(numerator, axis=0)
    tl.store(out_ptr + row * n_cols + cols, y.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def rms_norm_kernel(x_ptr, weight_ptr, out_ptr, n_cols, eps, BLOCK: tl.constexpr):
    """RMSNorm of one row per program, as llmfs.norms.RMSNorm: normalize in fp32, cast back, scale."""
    row = tl.program_id(axis=0)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * n_cols + cols, mask=mask, other=0.0).to(tl.float32)
    inv_rms = tl.rsqrt(tl.sum(x * x, axis=0) / n_cols + eps)
    weight = tl.load(weight_ptr + cols, mask=mask, other=0.0)
    y = (x * inv_rms).to(out_ptr.dtype.element_ty) * weight
    tl.store(out_ptr + row * n_cols + cols, y, mask=mask)


@triton.jit
def rope_kernel(x_ptr, cos_ptr, sin_ptr, out_ptr, seq_len, half, BLOCK: tl.constexpr):
    """RoPE, split-halves layout, one row (one token of one head) per program: dimension i turns with i + d/2."""
    row = tl.program_id(axis=0)
    position = row % seq_len                        # rows are (batch, head, position), position fastest
    i = tl.arange(0, BLOCK)
    mask = i < half
    x1 = tl.load(x_ptr + row * 2 * half + i, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(x_ptr + row * 2 * half + half + i, mask=mask, other=0.0).to(tl.float32)
    cos = tl.load(cos_ptr + position * half + i, mask=mask, other=0.0).to(tl.float32)
    sin = tl.load(sin_ptr + position * half + i, mask=mask, other=0.0).to(tl.float32)
    out_dtype = out_ptr.dtype.element_ty
    tl.store(out_ptr + row * 2 * half + i, (x1 * cos - x2 * sin).to(out_dtype), mask=mask)
    tl.store(out_ptr + row * 2 * half + half + i, (x2 * cos + x1 * sin).to(out_dtype), mask=mask)


@triton.jit
def matmul_kernel(a_ptr, b_ptr, c_ptr, M, N, K,
                  BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):
    """C = A @ B for row-major A (M, K) and B (K, N): each program computes one BLOCK_M x BLOCK_N tile of C,
    walking along K one BLOCK_K slice at a time and accumulating in fp32."""
    pid = tl.program_id(axis=0)
    # Grouped order: programs launched together cover GROUP_M tile-rows of C, so they reuse the same
    # rows of A and columns of B while those are still in the L2 cache.
    tiles_m = tl.cdiv(M, BLOCK_M)
    tiles_n = tl.cdiv(N, BLOCK_N)
    tiles_per_group = GROUP_M * tiles_n
    first_tile_m = (pid // tiles_per_group) * GROUP_M
    group_rows = tl.minimum(tiles_m - first_tile_m, GROUP_M)
    tile_m = first_tile_m + (pid % tiles_per_group) % group_rows
    tile_n = (pid % tiles_per_group) // group_rows

    rows = tile_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tile_n * BLOCK_N + tl.arange(0, BLOCK_N)
    ks = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        a = tl.load(a_ptr + rows[:, None] * K + (k0 + ks)[None, :],
                    mask=(rows[:, None] < M) & ((k0 + ks)[None, :] < K), other=0.0)
        b = tl.load(b_ptr + (k0 + ks)[:, None] * N + cols[None, :],
                    mask=((k0 + ks)[:, None] < K) & (cols[None, :] < N), other=0.0)
        acc = tl.dot(a, b, acc)                     # one tile product on the tensor cores
    tl.store(c_ptr + rows[:, None] * N + cols[None, :], acc.to(c_ptr.dtype.element_ty),
             mask=(rows[:, None] < M) & (cols[None, :] < N))


@triton.jit
def _attend_to_keys(acc, m_i, l_i, q, k_base, v_base, rows, start, end, seq_len, qk_scale,
                    HEAD_DIM: tl.constexpr, BLOCK_N: tl.constexpr, MASKED: tl.constexpr, CAUSAL: tl.constexpr):
    """Fold the key/value blocks [start, end) into one query tile's running softmax (m_i, l_i, acc).

    Scores are in log2 units (qk_scale includes log2 e), so exp2 replaces exp. Only MASKED blocks pay for
    the causal and sequence-end masks.
    """
    dims = tl.arange(0, HEAD_DIM)
    for block_start in range(start, end, BLOCK_N):
        cols = block_start + tl.arange(0, BLOCK_N)
        if MASKED:
            k = tl.load(k_base + cols[:, None] * HEAD_DIM + dims[None, :], mask=cols[:, None] < seq_len, other=0.0)
            v = tl.load(v_base + cols[:, None] * HEAD_DIM + dims[None, :], mask=cols[:, None] < seq_len, other=0.0)
        else:
            k = tl.load(k_base + cols[:, None] * HEAD_DIM + dims[None, :])
            v = tl.load(v_base + cols[:, None] * HEAD_DIM + dims[None, :])
        scores = tl.dot(q, tl.trans(k)) * qk_scale                    # (BLOCK_M, BLOCK_N), fp32
        if MASKED:
            keep = cols[None, :] < seq_len
            if CAUSAL:
                keep = keep & (cols[None, :] <= rows[:, None])
            scores = tl.where(keep, scores, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(scores, axis=1))               # the running row max
        alpha = tl.exp2(m_i - m_new)                                  # rescales what was summed so far
        p = tl.exp2(scores - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new
    return acc, m_i, l_i


@triton.jit
def flash_attention_kernel(q_ptr, k_ptr, v_ptr, out_ptr, seq_len, n_heads, n_kv_heads, qk_scale,
                           HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                           CAUSAL: tl.constexpr):
    """FlashAttention-2 forward: one program per (query tile, batch x head); keys and values stream through
    in blocks with an online softmax, so no (seq_len x seq_len) matrix is ever stored.

    q, out: (batch, n_heads, seq_len, HEAD_DIM); k, v: (batch, n_kv_heads, seq_len, HEAD_DIM), contiguous.
    With CAUSAL, key blocks entirely after the query tile are never visited (block skipping).
    """
    tile_m = tl.program_id(axis=0)
    batch_head = tl.program_id(axis=1)
    batch = batch_head // n_heads
    kv_head = (batch_head % n_heads) // (n_heads // n_kv_heads)       # grouped-query attention
    q_base = q_ptr + batch_head * seq_len * HEAD_DIM
    k_base = k_ptr + (batch * n_kv_heads + kv_head) * seq_len * HEAD_DIM
    v_base = v_ptr + (batch * n_kv_heads + kv_head) * seq_len * HEAD_DIM

    rows = tile_m * BLOCK_M + tl.arange(0, BLOCK_M)
    dims = tl.arange(0, HEAD_DIM)
    q = tl.load(q_base + rows[:, None] * HEAD_DIM + dims[None, :], mask=rows[:, None] < seq_len, other=0.0)
    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, HEAD_DIM), dtype=tl.float32)

    if CAUSAL:
        unmasked_end = tile_m * BLOCK_M                                 # keys before the tile: all visible
        end = tl.minimum((tile_m + 1) * BLOCK_M, seq_len)               # keys after the tile: skipped
    else:
        unmasked_end = (seq_len // BLOCK_N) * BLOCK_N                   # every full block
        end = seq_len
    acc, m_i, l_i = _attend_to_keys(acc, m_i, l_i, q, k_base, v_base, rows, 0, unmasked_end, seq_len, qk_scale,
                                    HEAD_DIM, BLOCK_N, False, CAUSAL)
    acc, m_i, l_i = _attend_to_keys(acc, m_i, l_i, q, k_base, v_base, rows, unmasked_end, end, seq_len, qk_scale,
                                    HEAD_DIM, BLOCK_N, True, CAUSAL)
    out = acc / l_i[:, None]
    tl.store(out_ptr + batch_head * seq_len * HEAD_DIM + rows[:, None] * HEAD_DIM + dims[None, :],
             out.to(out_ptr.dtype.element_ty), mask=rows[:, None] < seq_len)
