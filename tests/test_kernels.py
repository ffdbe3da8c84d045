"""The Triton kernels against their PyTorch references: in Triton's interpreter at small sizes on a CPU, at
GPU sizes in fp16 and bf16 on a GPU. Then the inputs each kernel refuses, and the roofline and result helpers."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from llmfs import bench
from llmfs import kernels as K
from llmfs.kernels import figures, roofline
from llmfs.kernels.results import load_results, plot_results, save_results
from llmfs.positions import rope_frequencies

pytest.importorskip("triton")

GPU = torch.cuda.is_available() and not K.interpreting()
DEVICE = "cuda" if GPU else "cpu"
DTYPES = (torch.float16, torch.bfloat16) if GPU else (torch.float32,)
TOLERANCE = {torch.float32: dict(atol=1e-5, rtol=1e-4), torch.float16: dict(atol=2e-3, rtol=2e-3),
             torch.bfloat16: dict(atol=2e-2, rtol=2e-2)}
DTYPE = DTYPES[0]
SCALE = 8 if GPU else 1                           # GPU sizes: 8x along each dimension


def randn(*shape, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen).to(device=DEVICE, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 63, 64, 1000])
def test_add(n, dtype):
    x, y = randn(n * SCALE, dtype=dtype), randn(n * SCALE, dtype=dtype, seed=1)
    torch.testing.assert_close(K.add(x, y), K.add_reference(x, y))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (7, 37), (3, 2, 64), (4, 1000)])
def test_softmax(shape, dtype):
    x = randn(*shape[:-1], shape[-1] * SCALE, dtype=dtype) * 5
    out = K.softmax(x)
    torch.testing.assert_close(out, K.softmax_reference(x), **TOLERANCE[dtype])
    torch.testing.assert_close(out.float().sum(-1), torch.ones(shape[:-1], device=DEVICE), **TOLERANCE[dtype])


def test_softmax_of_huge_scores_does_not_overflow():
    x = torch.tensor([[1000.0, 1000.0, -1000.0]], device=DEVICE)
    torch.testing.assert_close(K.softmax(x), torch.tensor([[0.5, 0.5, 0.0]], device=DEVICE))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (5, 48), (2, 3, 100)])
def test_rms_norm_matches_llmfs_rmsnorm(shape, dtype):
    x = randn(*shape[:-1], shape[-1] * SCALE, dtype=dtype) * 3
    weight = randn(shape[-1] * SCALE, dtype=dtype, seed=1)
    torch.testing.assert_close(K.rms_norm(x, weight, eps=1e-6), K.rms_norm_reference(x, weight, eps=1e-6),
                               **TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1, 2), (2, 3, 10, 12), (1, 2, 5, 64)])
def test_rope_matches_llmfs_apply_rope(shape, dtype):
    x = randn(*shape, dtype=dtype)
    angles = torch.arange(shape[-2], device=DEVICE)[:, None] * rope_frequencies(shape[-1]).to(DEVICE)
    cos, sin = angles.cos().to(dtype), angles.sin().to(dtype)
    torch.testing.assert_close(K.rope(x, cos, sin), K.rope_reference(x, cos, sin), **TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mnk", [(16, 16, 16), (50, 70, 40), (1, 33, 17), (64, 16, 80)])
def test_matmul(mnk, dtype):
    m, n, k = (size * SCALE for size in mnk)
    a, b = randn(m, k, dtype=dtype), randn(k, n, dtype=dtype, seed=1)
    tolerance = dict(atol=1e-4, rtol=1e-4) if dtype == torch.float32 else dict(atol=k * 1e-3, rtol=2e-2)
    torch.testing.assert_close(K.matmul(a, b), K.matmul_reference(a, b), **tolerance)


def test_matmul_grouped_order_covers_every_tile():
    a, b = randn(80, 32, dtype=DTYPE), randn(32, 48, dtype=DTYPE, seed=1)   # 5 x 3 tiles of 16: a partial group
    for group_m in (1, 2, 4):
        torch.testing.assert_close(K.matmul(a, b, block_m=16, block_n=16, block_k=16, group_m=group_m),
                                   K.matmul_reference(a, b), atol=1e-4 if DTYPE == torch.float32 else 0.05,
                                   rtol=1e-4 if DTYPE == torch.float32 else 1e-2)


ATTENTION_CASES = [  # (batch, heads, kv_heads, seq, head_dim, block_m, block_n)
    (1, 2, 2, 64, 32, 16, 16),
    (2, 2, 1, 37, 16, 16, 16),                       # ragged length, grouped-query heads
    (1, 4, 2, 50, 64, 32, 16),                       # query tiles twice as tall as key blocks
    (1, 1, 1, 1, 128, 16, 16),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("case", ATTENTION_CASES, ids=lambda case: "-".join(map(str, case)))
def test_flash_attention(case, causal, dtype):
    batch, heads, kv_heads, seq, head_dim, block_m, block_n = case
    seq *= SCALE
    q = randn(batch, heads, seq, head_dim, dtype=dtype)
    k, v = (randn(batch, kv_heads, seq, head_dim, dtype=dtype, seed=s) for s in (1, 2))
    blocks = {} if GPU else dict(block_m=block_m, block_n=block_n)
    out = K.flash_attention(q, k, v, causal=causal, **blocks)
    torch.testing.assert_close(out, K.attention_reference(q, k, v, causal=causal), **TOLERANCE[dtype])


def test_flash_attention_custom_scale():
    q, k, v = (randn(1, 1, 20, 16, dtype=DTYPE, seed=s) for s in range(3))
    torch.testing.assert_close(K.flash_attention(q, k, v, sm_scale=0.05),
                               K.attention_reference(q, k, v, sm_scale=0.05), **TOLERANCE[DTYPE])


def test_causal_flash_attention_never_reads_key_blocks_after_the_query_tile():
    # NaN values in every key block after the first two query tiles: any visit would poison those rows,
    # even where the mask zeroes the probabilities (0 * NaN = NaN).
    q, k, v = (randn(1, 1, 64, 16, dtype=DTYPE, seed=s) for s in range(3))
    poisoned = v.clone()
    poisoned[:, :, 32:] = float("nan")
    out = K.flash_attention(q, k, poisoned, causal=True, block_m=16, block_n=16)
    assert out[:, :, :32].isfinite().all()
    torch.testing.assert_close(out[:, :, :32], K.attention_reference(q, k, v)[:, :, :32], **TOLERANCE[DTYPE])
    assert out[:, :, 32:].isnan().any()              # and the check itself can fail


# --- inputs the kernels refuse --------------------------------------------------------------------------


@pytest.mark.parametrize("head_dim", [48, 8, 256])
def test_flash_attention_names_the_supported_head_dims(head_dim):
    q = randn(1, 1, 16, head_dim)
    with pytest.raises(K.KernelInputError, match=r"head_dim must be one of \(16, 32, 64, 128\), got " + str(head_dim)):
        K.flash_attention(q, q, q)


def test_non_contiguous_input_is_refused():
    x = randn(16, 8).t()
    with pytest.raises(K.KernelInputError, match=r"softmax: x is not contiguous .* pass x.contiguous\(\)"):
        K.softmax(x)
    q = randn(1, 16, 2, 16).transpose(1, 2)           # (batch, heads, seq, d) view of a (batch, seq, heads, d)
    with pytest.raises(K.KernelInputError, match="q is not contiguous"):
        K.flash_attention(q, q.contiguous(), q.contiguous())


@pytest.mark.parametrize("dtype", [torch.int32, torch.float64] + ([] if GPU else [torch.bfloat16, torch.float16]))
def test_unsupported_dtype_names_the_supported_ones(dtype):
    x = torch.ones(4, 8, dtype=dtype, device=DEVICE)
    supported = ", ".join(str(d).removeprefix("torch.") for d in K.supported_dtypes())
    with pytest.raises(K.KernelInputError, match=f"softmax: x has dtype .*; in .* the kernels support {supported}"):
        K.softmax(x)


def test_mixed_dtypes_and_bad_shapes_are_refused():
    with pytest.raises(K.KernelInputError, match="weight has dtype"):
        K.rms_norm(randn(2, 8), randn(8).double())
    with pytest.raises(K.KernelInputError, match=r"weight must have shape \(8,\)"):
        K.rms_norm(randn(2, 8), randn(4))
    with pytest.raises(K.KernelInputError, match=r"needs a \(M, K\) and b \(K, N\)"):
        K.matmul(randn(4, 8), randn(4, 8))
    with pytest.raises(K.KernelInputError, match="kv_heads dividing n_heads=3"):
        K.flash_attention(randn(1, 3, 16, 16), randn(1, 2, 16, 16), randn(1, 2, 16, 16))
    with pytest.raises(K.KernelInputError, match="rows of 1 to 65536 elements"):
        K.softmax(torch.empty(1, K.MAX_ROW + 1, device=DEVICE))
    with pytest.raises(K.KernelInputError, match=r"block_m \(16\) must be a multiple of block_n \(32\)"):
        K.flash_attention(*(randn(1, 1, 16, 16),) * 3, block_m=16, block_n=32)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_gpu_path_without_a_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")      # as if the kernels were compiled for a GPU
    with pytest.raises(K.NoGPUError, match="on cpu, but Triton compiles these kernels for a CUDA GPU"):
        K.softmax(torch.ones(2, 4))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_gpu_benchmark_without_a_gpu_says_so(capsys):
    with pytest.raises(SystemExit, match="kernels: this benchmark needs a CUDA GPU, and none is available here"):
        bench.main(["kernels"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_triton_imported_before_the_interpreter_switch_is_a_clear_error():
    code = "import triton, torch, llmfs.kernels as K\nK.softmax(torch.ones(2, 3))"
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert run.returncode != 0
    assert "triton was imported before its interpreter was switched on" in run.stderr


def test_import_llmfs_never_imports_triton():
    code = "import sys, llmfs, llmfs.kernels, llmfs.bench\nprint('triton' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"


def test_missing_triton_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", None)   # what `import triton` sees when it is not installed
    with pytest.raises(ImportError, match=r"needs the `triton` package.*pip install 'llmfs\[kernels\]'"):
        K.import_triton()


def test_launch_unwraps_a_not_implemented_kernel_body():
    triton, tl = K.import_triton()

    @triton.jit
    def stub_kernel(x_ptr):
        raise NotImplementedError("write me")

    if GPU:
        pytest.skip("the compiler, not Python, runs kernel bodies on a GPU")
    with pytest.raises(NotImplementedError):
        K.launch(stub_kernel, (1,), torch.ones(1))


# --- roofline and result file ---------------------------------------------------------------------------


def test_roofline_ridge_and_roofs():
    spec = roofline.H100_SXM
    assert spec.ridge == pytest.approx(989.5e12 / 3350e9)
    assert spec.attainable_tflops(1.0) == pytest.approx(3.35)                  # memory roof: 1 FLOP/B x 3.35 TB/s
    assert spec.attainable_tflops(10 * spec.ridge) == spec.peak_tflops          # compute roof
    assert roofline.spec_for("NVIDIA H100 80GB HBM3") is roofline.H100_SXM
    assert roofline.spec_for("NVIDIA H100 PCIe") is roofline.H100_PCIE
    assert roofline.spec_for("NVIDIA H200") is roofline.H200
    assert roofline.spec_for("NVIDIA GeForce RTX 4090") is None


def test_costs_count_flops_and_bytes():
    assert roofline.linear_cost(1, 4, 8, bytes_per_element=2) == (2 * 4 * 8, 2 * (32 + 4 + 8))
    flops, moved = roofline.attention_cost(3, 3, n_heads=2, n_kv_heads=1, head_dim=4, causal=True)
    assert flops == 4 * 6 * 2 * 4                                                 # 6 causal pairs of 3 tokens
    assert moved == 2 * 4 * (2 * 3 * 2 + 2 * 3 * 1)
    decode_flops, decode_bytes = roofline.attention_cost(1, 1000, 32, 8, 128, bytes_per_element=2)
    assert decode_flops / decode_bytes == pytest.approx(4 * 32 / (2 * 2 * 8), rel=1e-2)  # ~ the GQA group size


def test_roofline_plot_places_every_point():
    ax = roofline.plot_roofline(roofline.H100_SXM, {"decode": 1.0, "prefill": 2000.0})
    assert len(ax.lines) == 4                                                     # roof, ridge, two points
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["decode", "prefill"]


def synthetic_results() -> dict:
    """A result file's shape, with made-up values: for testing the reader and the plot only."""
    return dict(
        device="test device", date="2000-01-01T00:00:00+00:00", command="test", versions={},
        spec=dict(name="test", peak_tflops=100.0, bandwidth_gbs=1000.0, source="test"),
        softmax=[dict(rows=4, cols=c, triton_gbs=1.0, torch_gbs=2.0) for c in (256, 512)],
        rms_norm=[dict(rows=4, cols=c, triton_gbs=1.0, torch_gbs=2.0) for c in (256, 512)],
        matmul=[dict(size=s, triton_tflops=1.0, torch_tflops=2.0) for s in (256, 512)],
        attention=[dict(seq_len=n, head_dim=d, triton_tflops=1.0, sdpa_flash_tflops=2.0)
                   for d in (64, 128) for n in (256, 512)],
    )


def test_results_round_trip_and_plot(tmp_path):
    path = tmp_path / "gpu_results.json"
    assert load_results(path) is None
    results = synthetic_results()
    save_results(results, path)
    assert load_results(path) == results == json.loads(path.read_text())
    fig = plot_results(results)
    assert len(fig.axes) == 4 and len(fig.axes[3].lines) == 4


def test_launch_order_is_a_permutation_and_grouping_reads_fewer_panels():
    for group_m in (1, 3, 4, 8):
        assert sorted(figures.launch_order(7, 5, group_m).ravel()) == list(range(35))
    assert (figures.launch_order(4, 4, 1) == np.arange(16).reshape(4, 4)).all()         # row-major
    first_wave = figures.launch_order(8, 8, 4) < 8
    assert first_wave.any(axis=1).sum() + first_wave.any(axis=0).sum() == 4 + 2           # panels of A + of B


def test_attention_block_map_counts_what_the_kernel_visits():
    causal = figures.attention_blocks(128, 16, 16, causal=True)
    assert (causal != figures.SKIPPED).sum() == 8 * 9 // 2 and (causal == figures.MASKED).sum() == 8
    tall = figures.attention_blocks(100, 32, 16, causal=True)                              # 4 tiles x 7 blocks
    assert tall.shape == (4, 7) and (tall[3] == figures.MASKED).sum() == 1                 # keys 96..99 only
    full = figures.attention_blocks(100, 32, 16, causal=False)
    assert (full == figures.SKIPPED).sum() == 0 and (full[:, -1] == figures.MASKED).all()  # the ragged end
