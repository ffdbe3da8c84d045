"""The roofline model: a kernel's speed is capped by compute or by memory traffic, whichever it hits first.

Peak numbers are the vendors' published specifications (datasheets), not measurements.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class GPUSpec:
    """A GPU's published peaks: dense fp16/bf16 tensor-core TFLOP/s and memory bandwidth in GB/s."""

    name: str
    peak_tflops: float
    bandwidth_gbs: float
    source: str

    @property
    def ridge(self) -> float:
        """The arithmetic intensity (FLOP/byte) where the memory roof meets the compute roof."""
        return self.peak_tflops * 1e12 / (self.bandwidth_gbs * 1e9)

    def attainable_tflops(self, intensity: float) -> float:
        """The roofline: min(peak compute, intensity x bandwidth), in TFLOP/s."""
        return min(self.peak_tflops, intensity * self.bandwidth_gbs / 1e3)


# The datasheets list tensor-core FLOP/s "with sparsity"; dense matrices get half of that.
H100_SXM = GPUSpec("NVIDIA H100 SXM5 80GB", 1979 / 2, 3350,
                   "NVIDIA H100 Tensor Core GPU datasheet: FP16/BF16 tensor core 1,979 TFLOP/s with sparsity; "
                   "HBM3 3.35 TB/s")
H100_PCIE = GPUSpec("NVIDIA H100 PCIe 80GB", 1513 / 2, 2000,
                    "NVIDIA H100 Tensor Core GPU datasheet: FP16/BF16 tensor core 1,513 TFLOP/s with sparsity; "
                    "HBM2e 2 TB/s")
H200 = GPUSpec("NVIDIA H200 SXM 141GB", 1979 / 2, 4800,
               "NVIDIA H200 Tensor Core GPU datasheet: FP16/BF16 tensor core 1,979 TFLOP/s with sparsity; "
               "HBM3e 4.8 TB/s")


def spec_for(device_name: str) -> GPUSpec | None:
    """The published spec matching torch.cuda.get_device_name(), or None for a GPU not listed here."""
    if "H200" in device_name:
        return H200
    if "H100" in device_name and "PCIe" in device_name:
        return H100_PCIE
    if "H100" in device_name and ("SXM" in device_name or "HBM3" in device_name):
        return H100_SXM
    return None


def linear_cost(tokens: int, d_in: int, d_out: int, bytes_per_element: int = 2) -> tuple[int, int]:
    """(FLOPs, bytes) of a linear layer on `tokens` tokens: read the weight and the input once, write the output."""
    flops = 2 * tokens * d_in * d_out
    moved = bytes_per_element * (d_in * d_out + tokens * d_in + tokens * d_out)
    return flops, moved


def attention_cost(queries: int, keys: int, n_heads: int, n_kv_heads: int, head_dim: int,
                   bytes_per_element: int = 2, causal: bool = False) -> tuple[int, int]:
    """(FLOPs, bytes) of one sequence's attention: q k^T and p v for every visible (query, key) pair,
    reading q, k, v once and writing the output once (as FlashAttention does). `causal` counts the
    pairs of a prefill (queries == keys) on or below the diagonal."""
    pairs = queries * (queries + 1) // 2 if causal else queries * keys
    flops = 4 * pairs * n_heads * head_dim
    moved = bytes_per_element * head_dim * (2 * queries * n_heads + 2 * keys * n_kv_heads)
    return flops, moved


def plot_roofline(spec: GPUSpec, points: dict[str, float], ax=None):
    """Draw the roofline of `spec` (log-log) and place each named arithmetic intensity on it."""
    import matplotlib.pyplot as plt
    import numpy as np

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.2))
    low = min(min(points.values(), default=1.0), spec.ridge) / 4
    high = max(max(points.values(), default=1.0), spec.ridge) * 4
    intensity = np.geomspace(low, high, 200)
    ax.loglog(intensity, [spec.attainable_tflops(i) for i in intensity], color="black", lw=2)
    ax.axvline(spec.ridge, color="gray", ls=":", lw=1)
    ax.text(spec.ridge * 1.1, spec.peak_tflops * 0.02, f"ridge\n{spec.ridge:.0f} FLOP/B", color="gray", fontsize=9)
    markers = "os^vDP*X"
    for number, (name, value) in enumerate(sorted(points.items(), key=lambda item: item[1])):
        ax.plot(value, spec.attainable_tflops(value), markers[number % len(markers)], markersize=8, label=name)
    ax.legend(fontsize=9, loc="lower right")
    ax.set(xlabel="arithmetic intensity (FLOP per byte moved)", ylabel="attainable TFLOP/s",
           title=f"Roofline of the {spec.name} (published peaks)")
    ax.set_ylim(top=spec.peak_tflops * 3)
    return ax
