"""Benchmarks that print ratios: `python -m llmfs.bench` lists them, `python -m llmfs.bench NAME` runs one.

Each ends with one line `NAME: <metric> = <value>`, so targets are checked by reading a ratio, not by a
timed test that would flake on a busy machine.
"""

import argparse
import statistics
import sys
import time

import torch


def _median_seconds(fn, repeats: int, warmup: bool = True) -> float:
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def kv_cache(repeats: int = 3) -> tuple[str, float]:
    """Decode tokens/s with the KV cache divided by tokens/s without it: 512 new tokens, a small GPT on the CPU."""
    from . import zoo
    from .generate import generate
    from .model import Transformer

    torch.manual_seed(0)
    # Width 256: at width 128 a cached step is so cheap that per-call overhead dominates and the ratio
    # sits near 5 whatever the cache saves; wider, the arithmetic the cache skips shows in the clock.
    config = zoo.tiny("gpt2-124m", d_model=256, n_layers=4, head_dim=64, d_ff=1024, context_length=1024)
    model = Transformer(config).eval()
    prompt = torch.randint(0, config.vocab_size, (1, 16))
    new_tokens = 512
    with_cache = _median_seconds(lambda: generate(model, prompt, new_tokens, use_cache=True), repeats)
    # Without the cache one run takes about a minute on a laptop CPU, so it is timed once.
    without = _median_seconds(lambda: generate(model, prompt, new_tokens, use_cache=False), 1, warmup=False)
    print(f"with cache:    {new_tokens / with_cache:8.1f} tokens/s")
    print(f"without cache: {new_tokens / without:8.1f} tokens/s")
    return "speedup", without / with_cache


def hf_forward(repeats: int = 5) -> tuple[str, float]:
    """llmfs forward time divided by transformers' eager forward time, same Llama-style config and weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from .hf import from_transformers

    torch.manual_seed(0)
    hf = LlamaForCausalLM(LlamaConfig(
        vocab_size=8192, hidden_size=512, intermediate_size=1376, num_hidden_layers=4, num_attention_heads=8,
        num_key_value_heads=2, max_position_embeddings=1024, attn_implementation="eager",
    )).eval()
    ours = from_transformers(hf)
    idx = torch.randint(0, 8192, (4, 256))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), hf(idx).logits, atol=1e-4, rtol=1e-4)
        t_ours = _median_seconds(lambda: ours(idx), repeats)
        t_hf = _median_seconds(lambda: hf(idx), repeats)
    print(f"llmfs forward:        {t_ours * 1e3:8.1f} ms")
    print(f"transformers (eager): {t_hf * 1e3:8.1f} ms")
    return "time ratio", t_ours / t_hf


def kernels() -> tuple[str, float]:
    """On a CUDA GPU: the Triton kernels of chapter 10 against PyTorch, saved to a result file; needs a GPU."""
    from .kernels.benchmark import run

    return run()
def _best_interleaved(fns: dict, rounds: int) -> dict:
    """Best time of each function over `rounds` rounds, the functions taking turns within a round."""
    best = {name: float("inf") for name in fns}
    for fn in fns.values():
        fn()  # warm up
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def moe_dispatch(rounds: int = 3, threads: int = 2) -> tuple[str, float]:
    """llmfs's MoE layer time / transformers' Qwen3-MoE sparse block (its fastest CPU experts implementation),
    same weights: 64 experts, top-8, 4096 tokens, fp32. The textbook loop over experts is timed for comparison."""
    from transformers import Qwen3MoeConfig
    from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock

    from .hf import moe_weights_from_transformers
    from .moe import MoE, MixtureOfExperts

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    d_model, d_expert = 256, 128
    hf_config = Qwen3MoeConfig(hidden_size=d_model, moe_intermediate_size=d_expert, num_experts=64,
                               num_experts_per_tok=8, norm_topk_prob=True)
    hf = Qwen3MoeSparseMoeBlock(hf_config).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0, 0.05)
    ours = MixtureOfExperts(d_model, MoE(n_experts=64, top_k=8, d_expert=d_expert)).eval()
    ours.load_state_dict(moe_weights_from_transformers(hf.state_dict(), ""))
    x = torch.randn(1, 4096, d_model)

    def hf_with(implementation):
        def run():
            hf.experts.config._experts_implementation = implementation
            return hf(x)
        return run

    def ours_with(dispatch):
        def run():
            ours.dispatch = dispatch
            return ours(x)
        return run

    with torch.no_grad():
        torch.testing.assert_close(ours_with("sorted")(), hf_with("eager")(), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(ours_with("loop")(), hf_with("grouped_mm")(), atol=1e-5, rtol=1e-4)
        best = _best_interleaved({"llmfs sorted": ours_with("sorted"), "llmfs loop": ours_with("loop"),
                                  "transformers eager": hf_with("eager"),
                                  "transformers grouped_mm": hf_with("grouped_mm")}, rounds)
    for name, seconds in best.items():
        print(f"{name:24s} {seconds * 1e3:8.1f} ms")
    reference = min(best["transformers eager"], best["transformers grouped_mm"])
    print(f"llmfs loop / transformers: {best['llmfs loop'] / reference:.2f}")
    return "time ratio", best["llmfs sorted"] / reference


BENCHMARKS = {
    "kv-cache": (kv_cache, "decode tokens/s with cache / without (target >= 5)"),
    "hf-forward": (hf_forward, "llmfs forward time / transformers eager forward time (target <= 1.0)"),
    "kernels": (kernels, "GPU only: Triton attention speed / SDPA flash at N=4096 (target >= 0.5), GB/s, TFLOP/s"),
    "moe-dispatch": (moe_dispatch, "llmfs MoE layer time / transformers Qwen3-MoE block, 64 experts top-8 (target <= 1.0)"),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmfs.bench", description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", help="benchmark to run; omit to list them")
    args = parser.parse_args(argv)
    if args.name is None:
        for name, (_, about) in BENCHMARKS.items():
            print(f"{name:13s} {about}")
        return 0
    if args.name not in BENCHMARKS:
        parser.error(f"unknown benchmark {args.name!r}; choose one of {', '.join(BENCHMARKS)}")
    metric, value = BENCHMARKS[args.name][0]()
    print(f"{args.name}: {metric} = {value:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
