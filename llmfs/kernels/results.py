"""The GPU result file of `python -m llmfs.bench kernels`: where it lives, how to read it and plot it."""

import json
from pathlib import Path

RESULTS_PATH = Path(__file__).resolve().parent.parent / "data" / "kernels" / "gpu_results.json"


def save_results(results: dict, path: Path = RESULTS_PATH) -> Path:
    """Write `results` as indented JSON (creating the folder); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return path


def load_results(path: Path = RESULTS_PATH) -> dict | None:
    """The stored GPU results, or None where no GPU run has been stored yet."""
    path = Path(path)
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def plot_results(results: dict):
    """Four panels: softmax and RMSNorm in GB/s against the peak bandwidth, matmul and attention in TFLOP/s
    against PyTorch (cuBLAS, SDPA's flash backend) and the peak."""
    import matplotlib.pyplot as plt

    spec = results.get("spec")
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for ax, name in zip(axes[0], ("softmax", "rms_norm")):
        rows = results[name]
        cols = [row["cols"] for row in rows]
        ax.semilogx(cols, [row["triton_gbs"] for row in rows], "o-", label="Triton (llmfs)", base=2)
        ax.semilogx(cols, [row["torch_gbs"] for row in rows], "s--", label="PyTorch", base=2)
        if spec:
            ax.axhline(spec["bandwidth_gbs"], color="black", lw=1, label="peak (datasheet)")
            ax.axhline(0.7 * spec["bandwidth_gbs"], color="gray", ls=":", lw=1, label="70% of peak")
        ax.set(xlabel="row length", ylabel="GB/s", title=f"{name}, fp16")
        ax.legend(fontsize=9)
    rows = results["matmul"]
    ax = axes[1][0]
    sizes = [row["size"] for row in rows]
    ax.semilogx(sizes, [row["triton_tflops"] for row in rows], "o-", label="Triton (llmfs)", base=2)
    ax.semilogx(sizes, [row["torch_tflops"] for row in rows], "s--", label="torch.matmul (cuBLAS)", base=2)
    if spec:
        ax.axhline(spec["peak_tflops"], color="black", lw=1, label="peak (datasheet)")
    ax.set(xlabel="M = N = K", ylabel="TFLOP/s", title="matmul, fp16")
    ax.legend(fontsize=9)
    ax = axes[1][1]
    for head_dim in sorted({row["head_dim"] for row in results["attention"]}):
        rows = [row for row in results["attention"] if row["head_dim"] == head_dim]
        lengths = [row["seq_len"] for row in rows]
        line, = ax.semilogx(lengths, [row["triton_tflops"] for row in rows], "o-", base=2,
                            label=f"Triton (llmfs), d={head_dim}")
        ax.semilogx(lengths, [row["sdpa_flash_tflops"] for row in rows], "s--", base=2, color=line.get_color(),
                    label=f"SDPA flash, d={head_dim}")
    ax.set(xlabel="sequence length N", ylabel="TFLOP/s", title="causal attention forward, fp16")
    ax.legend(fontsize=9)
    fig.suptitle(f"{results['device']}, {results['date'][:10]}")
    fig.tight_layout()
    return fig
