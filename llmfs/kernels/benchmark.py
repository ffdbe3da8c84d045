"""`python -m llmfs.bench kernels`: the Triton kernels against PyTorch on a CUDA GPU, in fp16.

Memory-bound kernels (softmax, RMSNorm) are reported in GB/s, compute-bound ones (matmul, attention) in
TFLOP/s. Each pair of sides is timed in alternation, three rounds, best median kept. The results go to
`results.RESULTS_PATH` with the device, date, library versions and command, for chapter 10 to plot.
"""

import datetime
import math
import platform

import torch
import torch.nn.functional as F

from . import ops, reference
from .results import RESULTS_PATH, save_results
from .roofline import spec_for

COMMAND = "python -m llmfs.bench kernels"
ROW_ELEMENTS = 2**26                                # 128 MiB of fp16 per row benchmark: far beyond L2
ROW_LENGTHS = (1024, 2048, 4096, 8192, 16384)
MATMUL_SIZES = (1024, 2048, 4096, 8192)
ATTENTION_LENGTHS = (512, 1024, 2048, 4096, 8192, 16384)
ATTENTION_SHAPES = {64: (4, 16), 128: (4, 8)}       # head_dim -> (batch, heads): model width 1024
TARGET_LENGTH = 4096


def _best_ms(*fns, rounds: int = 3) -> list[float]:
    """Milliseconds per call of each function: do_bench medians, the sides alternating, best of `rounds`."""
    from triton.testing import do_bench

    best = [math.inf] * len(fns)
    for _ in range(rounds):
        for index, fn in enumerate(fns):
            best[index] = min(best[index], do_bench(fn, warmup=25, rep=100, return_mode="median"))
    return best


def _copy_bandwidth_gbs() -> float:
    """Measured GB/s of a device-to-device copy of 512 MiB: what a memory-bound kernel can hope for."""
    x = torch.empty(2**28, dtype=torch.float16, device="cuda")
    y = torch.empty_like(x)
    [ms] = _best_ms(lambda: y.copy_(x))
    return 2 * x.numel() * x.element_size() / (ms * 1e-3) / 1e9


def _row_kernels() -> dict[str, list[dict]]:
    out = {"softmax": [], "rms_norm": []}
    for cols in ROW_LENGTHS:
        x = torch.randn(ROW_ELEMENTS // cols, cols, dtype=torch.float16, device="cuda")
        weight = torch.randn(cols, dtype=torch.float16, device="cuda")
        torch.testing.assert_close(ops.softmax(x), reference.softmax_reference(x), atol=2e-3, rtol=2e-2)
        torch.testing.assert_close(ops.rms_norm(x, weight), reference.rms_norm_reference(x, weight),
                                   atol=2e-2, rtol=2e-2)
        moved = 2 * x.numel() * x.element_size()                        # read x once, write once
        ours, theirs = _best_ms(lambda: ops.softmax(x), lambda: torch.softmax(x, dim=-1))
        out["softmax"].append(dict(rows=x.shape[0], cols=cols, triton_gbs=moved / ours / 1e6,
                                   torch_gbs=moved / theirs / 1e6))
        ours, theirs = _best_ms(lambda: ops.rms_norm(x, weight), lambda: F.rms_norm(x, (cols,), weight, 1e-6))
        out["rms_norm"].append(dict(rows=x.shape[0], cols=cols, triton_gbs=moved / ours / 1e6,
                                    torch_gbs=moved / theirs / 1e6))
    return out


def _matmul() -> list[dict]:
    out = []
    for size in MATMUL_SIZES:
        a = torch.randn(size, size, dtype=torch.float16, device="cuda")
        b = torch.randn(size, size, dtype=torch.float16, device="cuda")
        torch.testing.assert_close(ops.matmul(a, b), a @ b, atol=size * 1e-3, rtol=1e-2)
        ours, theirs = _best_ms(lambda: ops.matmul(a, b), lambda: a @ b)
        flops = 2 * size**3
        out.append(dict(size=size, triton_tflops=flops / ours / 1e9, torch_tflops=flops / theirs / 1e9))
    return out


def _attention() -> list[dict]:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    out = []
    for head_dim, (batch, heads) in ATTENTION_SHAPES.items():
        for seq in ATTENTION_LENGTHS:
            q, k, v = (torch.randn(batch, heads, seq, head_dim, dtype=torch.float16, device="cuda") for _ in range(3))

            def sdpa():
                with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                    return F.scaled_dot_product_attention(q, k, v, is_causal=True)

            torch.testing.assert_close(ops.flash_attention(q, k, v), sdpa(), atol=2e-3, rtol=2e-2)
            torch.cuda.synchronize()
            before = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            ops.flash_attention(q, k, v)
            torch.cuda.synchronize()
            extra = torch.cuda.max_memory_allocated() - before                # the output: linear in seq
            ours, theirs = _best_ms(lambda: ops.flash_attention(q, k, v), sdpa)
            flops = 4 * batch * heads * head_dim * seq * (seq + 1) // 2         # causal pairs only
            out.append(dict(seq_len=seq, head_dim=head_dim, batch=batch, heads=heads,
                            triton_tflops=flops / ours / 1e9, sdpa_flash_tflops=flops / theirs / 1e9,
                            triton_extra_memory_mib=extra / 2**20))
    return out


def run(path=RESULTS_PATH) -> tuple[str, float]:
    """Measure every kernel on the GPU, save the result file, print a table; return the attention ratio."""
    if not torch.cuda.is_available():
        raise SystemExit(
            "kernels: this benchmark needs a CUDA GPU, and none is available here, so nothing was measured. "
            "Without a GPU the kernels are checked in Triton's interpreter: python -m pytest tests/test_kernels.py"
        )
    import triton

    from .. import __version__

    device = torch.cuda.get_device_name()
    spec = spec_for(device)
    results = dict(
        device=device,
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        command=COMMAND,
        versions=dict(llmfs=__version__, torch=torch.__version__, triton=triton.__version__,
                      cuda=torch.version.cuda, python=platform.python_version()),
        spec=None if spec is None else dict(name=spec.name, peak_tflops=spec.peak_tflops,
                                            bandwidth_gbs=spec.bandwidth_gbs, source=spec.source),
        dtype="float16",
        copy_bandwidth_gbs=_copy_bandwidth_gbs(),
        **_row_kernels(),
        matmul=_matmul(),
        attention=_attention(),
    )
    saved = save_results(results, path)
    peak = spec.bandwidth_gbs if spec else results["copy_bandwidth_gbs"]
    print(f"{device}; peak bandwidth {peak:.0f} GB/s ({'datasheet' if spec else 'measured copy'})")
    for name in ("softmax", "rms_norm"):
        for row in results[name]:
            print(f"{name:9s} cols {row['cols']:6d}: Triton {row['triton_gbs']:7.0f} GB/s "
                  f"({row['triton_gbs'] / peak:4.0%} of peak), PyTorch {row['torch_gbs']:7.0f} GB/s")
    for row in results["matmul"]:
        print(f"matmul {row['size']:5d}: Triton {row['triton_tflops']:6.1f} TFLOP/s, "
              f"cuBLAS {row['torch_tflops']:6.1f} TFLOP/s")
    for row in results["attention"]:
        print(f"attention d={row['head_dim']:3d} N={row['seq_len']:6d}: Triton {row['triton_tflops']:6.1f} TFLOP/s, "
              f"SDPA flash {row['sdpa_flash_tflops']:6.1f} TFLOP/s, extra memory {row['triton_extra_memory_mib']:.0f} MiB")
    print(f"results saved to {saved}")
    target = next(row for row in results["attention"] if row["seq_len"] == TARGET_LENGTH and row["head_dim"] == 64)
    return f"attention speed / SDPA flash (N={TARGET_LENGTH}, d=64, causal)", \
        target["triton_tflops"] / target["sdpa_flash_tflops"]
