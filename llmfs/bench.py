"""Benchmarks that print ratios: `python -m llmfs.bench` lists them, `python -m llmfs.bench NAME` runs one.

Each ends with one line `NAME: <metric> = <value>`, so targets are checked by reading a ratio, not by a
timed test that would flake on a busy machine.
"""

import argparse
import sys
import time

import torch


THREADS = 1  # fixed, so a ratio does not depend on how many cores happen to be free


def _clock() -> float:
    """Seconds of CPU time this process has used, or wall time once a GPU is in use.

    On a shared CPU a process waits while others run; its CPU time leaves those waits out, so with a
    fixed thread count it measures the work itself. GPU work is not CPU time, so with a GPU the wall clock.
    """
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return time.perf_counter()
    return time.process_time()


def _synchronize() -> None:
    """Wait for queued GPU work, so the clock measures it (a no-op on the CPU)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def best_seconds(sides: dict, rounds: int, clock=None, threads: int | None = THREADS) -> dict:
    """Best time of each side's call over `rounds` rounds, the sides interleaved within every round.

    Interleaving exposes both sides to the same load on a shared machine, and the best (least disturbed)
    run is the closest to what the code itself costs. `clock` defaults to `_clock` (the process's CPU time on
    the CPU); `threads` is fixed for the run and restored after (None leaves the thread count alone).
    Each side runs once untimed first (warm-up). A side that returns a float has timed itself (e.g.
    `decode_seconds`, which leaves out its prefill). The one timer every benchmark here uses.
    """
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
        raise ValueError(f"rounds must be a positive integer, got {rounds!r}")
    clock = _clock if clock is None else clock
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        for fn in sides.values():
            fn()
        best = {name: float("inf") for name in sides}
        for _ in range(rounds):
            for name, fn in sides.items():
                _synchronize()
                start = clock()
                own = fn()
                _synchronize()
                seconds = own if isinstance(own, float) else clock() - start
                best[name] = min(best[name], seconds)
    finally:
        torch.set_num_threads(previous_threads)
    return best


@torch.no_grad()
def decode_seconds(model, prompt, new_tokens: int, cache) -> float:
    """Seconds for `new_tokens` greedy decode steps after prefilling `prompt` into `cache` (prefill not timed)."""
    logits = model(prompt, cache=cache)[:, -1]
    next_id = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
    _synchronize()
    start = _clock()
    for _ in range(new_tokens):
        next_id = model(next_id, cache=cache)[:, -1].argmax(dim=-1, keepdim=True)
    _synchronize()
    return _clock() - start


@torch.no_grad()
def cached_step_seconds(layer, x: torch.Tensor, positions: torch.Tensor, cache, repeats: int = 5) -> float:
    """Best seconds of one call `layer(x, positions, cache=cache)` over `repeats` calls.

    The cache is put back as it was after every call, so each call decodes over the same cached tokens.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive int, got {repeats!r}")
    best = float("inf")
    for _ in range(repeats):
        saved = cache.tensors, cache.length
        _synchronize()
        start = _clock()
        layer(x, positions, cache=cache)
        _synchronize()
        best = min(best, _clock() - start)
        cache.tensors, cache.length = saved
    return best


def _llama_pair(attn_implementation: str):
    """A random Llama-style transformers model and the llmfs model with the same weights, both in eval mode."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from .hf import from_transformers

    torch.manual_seed(0)
    hf = LlamaForCausalLM(LlamaConfig(
        vocab_size=8192, hidden_size=512, intermediate_size=1376, num_hidden_layers=4, num_attention_heads=8,
        num_key_value_heads=2, max_position_embeddings=1024, attn_implementation=attn_implementation,
        bos_token_id=None, eos_token_id=None, pad_token_id=None,
    )).eval()
    return hf, from_transformers(hf).eval()


def kv_cache(rounds: int = 3) -> tuple[str, float]:
    """Decode tokens/s with the KV cache divided by tokens/s without it: 256 new tokens, a small GPT on the CPU."""
    from . import zoo
    from .generate import generate
    from .model import Transformer

    torch.manual_seed(0)
    # Width 256: at width 128 a cached step is so cheap that per-call overhead dominates and the ratio
    # sits near 5 whatever the cache saves; wider, the arithmetic the cache skips shows in the clock.
    config = zoo.tiny("gpt2-124m", d_model=256, n_layers=4, head_dim=64, d_ff=1024, context_length=1024)
    model = Transformer(config).eval()
    prompt = torch.randint(0, config.vocab_size, (1, 16))
    new_tokens = 256
    outputs = {}
    best = best_seconds({
        "with cache": lambda: outputs.__setitem__("with", generate(model, prompt, new_tokens, use_cache=True)),
        "without cache": lambda: outputs.__setitem__("without", generate(model, prompt, new_tokens, use_cache=False)),
    }, rounds)
    assert torch.equal(outputs["with"], outputs["without"]), "the cache changed the generated tokens"
    for name, seconds in best.items():
        print(f"{name + ':':15s}{new_tokens / seconds:8.1f} tokens/s (best of {rounds}, {THREADS} thread)")
    return "speedup", best["without cache"] / best["with cache"]


def hf_forward(rounds: int = 7) -> tuple[str, float]:
    """llmfs forward time divided by transformers' eager forward time, same Llama-style config and weights."""
    hf, ours = _llama_pair("eager")
    idx = torch.randint(0, 8192, (4, 256))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), hf(idx).logits, atol=1e-4, rtol=1e-4)
        best = best_seconds({"llmfs": lambda: ours(idx), "transformers": lambda: hf(idx)}, rounds)
    print(f"llmfs forward:        {best['llmfs'] * 1e3:8.1f} ms (best of {rounds}, {THREADS} thread)")
    print(f"transformers (eager): {best['transformers'] * 1e3:8.1f} ms")
    return "time ratio", best["llmfs"] / best["transformers"]


def decode_vs_hf(rounds: int = 5, prompt_tokens: int = 32, new_tokens: int = 256) -> tuple[str, float]:
    """llmfs greedy decode tokens/s divided by transformers' `generate`: same Llama-style weights, SDPA, CPU.

    llmfs decodes with its weights in `decode_layout` (input-major); its default layout is timed alongside."""
    import copy

    from .generate import decode_layout, generate

    hf, ours = _llama_pair("sdpa")
    default_layout = copy.deepcopy(ours)
    decode_layout(ours)
    prompt = torch.randint(0, 8192, (1, prompt_tokens), generator=torch.Generator().manual_seed(1))
    outputs = {}

    def run_hf():
        outputs["transformers"] = hf.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                                              max_new_tokens=new_tokens, min_new_tokens=new_tokens)

    def run(name, model):
        return lambda: outputs.__setitem__(name, generate(model, prompt, new_tokens))

    best = best_seconds({"llmfs": run("llmfs", ours), "llmfs, default layout": run("default", default_layout),
                         "transformers": run_hf}, rounds)
    assert outputs["llmfs"].shape == (1, prompt_tokens + new_tokens)
    for name in ("llmfs", "default"):
        assert torch.equal(outputs[name], outputs["transformers"]), f"{name} and transformers generated different tokens"
    for name, seconds in best.items():
        print(f"{name + ':':23s}{new_tokens / seconds:8.1f} tokens/s (best of {rounds}, {THREADS} thread)")
    return "tokens/s ratio", best["transformers"] / best["llmfs"]


def kernels() -> tuple[str, float]:
    """On a CUDA GPU: the Triton kernels of chapter 10 against PyTorch, saved to a result file; needs a GPU."""
    from .kernels.benchmark import run

    return run()


def _best_interleaved(fns: dict, rounds: int) -> dict:
    """Wall-clock `best_seconds` at the caller's thread count."""
    return best_seconds(fns, rounds, clock=time.perf_counter, threads=None)


def moe_dispatch_timings(rounds: int = 9) -> dict:
    """Best seconds of llmfs's MoE layer (sorted dispatch and the textbook loop) and of transformers' Qwen3-MoE
    sparse block (its eager and grouped_mm experts), same weights: 64 experts, top-8, 4096 tokens, fp32, one
    thread, the four interleaved, best of `rounds` by CPU time; the outputs are checked equal first."""
    from transformers import Qwen3MoeConfig
    from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock

    from .hf import moe_weights_from_transformers
    from .moe import MoE, MixtureOfExperts

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
        best = best_seconds({"llmfs sorted": ours_with("sorted"), "llmfs loop": ours_with("loop"),
                             "transformers eager": hf_with("eager"),
                             "transformers grouped_mm": hf_with("grouped_mm")}, rounds)
    return best


def moe_dispatch(rounds: int = 9) -> tuple[str, float]:
    """llmfs's MoE layer time / transformers' Qwen3-MoE sparse block (the faster of its two experts
    implementations), as timed by `moe_dispatch_timings`; the textbook loop's ratio is printed for comparison."""
    best = moe_dispatch_timings(rounds)
    for name, seconds in best.items():
        print(f"{name:24s} {seconds * 1e3:8.1f} ms (best of {rounds}, {THREADS} thread)")
    reference = min(best["transformers eager"], best["transformers grouped_mm"])
    print(f"llmfs loop / transformers: {best['llmfs loop'] / reference:.2f}")
    return "time ratio", best["llmfs sorted"] / reference


def _best_seconds_interleaved(fns: dict, repeats: int, clock=time.perf_counter) -> dict:
    """`best_seconds` by `clock` at the caller's thread count (kept for the linear-attention timings)."""
    return best_seconds(fns, repeats, clock=clock, threads=None)


def linear_attention_timings(lengths, heads: int = 4, head_dim: int = 64, chunk_size: int = 64, repeats: int = 3,
                             recurrent_up_to: int = 4096, seed: int = 0) -> list[dict]:
    """Seconds for one head-batch of Gated DeltaNet (recurrent loop, chunked) and causal softmax attention (SDPA) at
    each length, on the CPU with one thread; the recurrent loop only up to `recurrent_up_to` tokens.

    With one thread all the work runs on the calling thread, so its CPU time (`time.thread_time`) is measured:
    unlike the wall clock, it does not count the time other programs on a busy machine hold the core.
    """
    import torch.nn.functional as F

    from .linear_attention import chunked, l2_normalize, recurrent

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    try:
        g = torch.Generator().manual_seed(seed)
        for T in lengths:
            q, k, v = (torch.randn(1, heads, T, head_dim, generator=g) for _ in range(3))
            q, k = l2_normalize(q), l2_normalize(k)
            beta = torch.rand(1, heads, T, generator=g)
            log_decay = F.logsigmoid(torch.randn(1, heads, T, generator=g) + 4)
            fns = {
                "chunked": lambda: chunked(q, k, v, log_decay, beta, chunk_size),
                "sdpa": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True),
            }
            if T <= recurrent_up_to:
                fns["recurrent"] = lambda: recurrent(q, k, v, log_decay, beta)
            with torch.no_grad():
                rows.append({"length": T, **_best_seconds_interleaved(fns, repeats, clock=time.thread_time)})
    finally:
        torch.set_num_threads(threads)
    return rows


def crossover_length(rows: list[dict]) -> int | None:
    """The first measured length from which chunked Gated DeltaNet stays faster than SDPA (None if it never is)."""
    for i, row in enumerate(rows):
        if all(r["chunked"] < r["sdpa"] for r in rows[i:]):
            return row["length"]
    return None


def gated_deltanet(repeats: int = 5) -> tuple[str, float]:
    """Chunked Gated DeltaNet's speedup over its recurrent loop at T = 4096, and where it overtakes SDPA."""
    rows = linear_attention_timings([512, 1024, 2048, 4096, 8192], repeats=repeats)
    print(f"{'tokens':>7} {'recurrent':>10} {'chunked':>10} {'SDPA':>10}   (ms of CPU, 4 heads of 64, 1 thread, best of {repeats})")
    for row in rows:
        rec = f"{row['recurrent'] * 1e3:10.1f}" if "recurrent" in row else f"{'':10}"
        print(f"{row['length']:7d} {rec} {row['chunked'] * 1e3:10.1f} {row['sdpa'] * 1e3:10.1f}")
    crossover = crossover_length(rows)
    print(f"chunked Gated DeltaNet overtakes SDPA from {crossover} tokens" if crossover
          else "chunked Gated DeltaNet does not overtake SDPA up to 8192 tokens")
    at_4096 = next(row for row in rows if row["length"] == 4096)
    return "speedup", at_4096["recurrent"] / at_4096["chunked"]


def speculative(rounds: int = 5, k: int = 4, new_tokens: int = 200) -> tuple[str, float]:
    """Greedy speculative decoding tokens/s over plain `generate`'s: same target, a well-matched draft, CPU.

    `drafts.trained_pair("bench")` trains (one thread, about 30 s of CPU time) a 6-layer, 256-wide target and a
    1-layer, 64-wide draft on the same phrase text, which a small model learns as well as a big one: the draft
    is well matched because the text is predictable, the case speculative decoding is for. Both decoders emit
    the same tokens (asserted); the sides are interleaved, best of `rounds`, with a fixed thread count.
    """
    from .drafts import trained_pair
    from .generate import generate
    from .speculative import speculative_generate

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        target, draft, text = trained_pair("bench")
    finally:
        torch.set_num_threads(previous_threads)
    prompt = text.stream(8, seed=1)[None]  # (1, 8)
    outputs = {}
    best = best_seconds({
        "plain": lambda: outputs.__setitem__("plain", generate(target, prompt, new_tokens)),
        "speculative": lambda: outputs.__setitem__("speculative", speculative_generate(
            target, draft, prompt, new_tokens, k=k, return_stats=True)),
    }, rounds)
    ids, stats = outputs["speculative"]
    assert torch.equal(ids, outputs["plain"]), "speculative decoding changed the greedy tokens"
    for name, seconds in best.items():
        print(f"{name + ':':13s}{new_tokens / seconds:8.1f} tokens/s (best of {rounds}, {THREADS} thread)")
    print(f"k = {k}: acceptance rate {stats.acceptance_rate:.3f}, {stats.tokens_per_round:.2f} tokens per target pass")
    return "speedup", best["plain"] / best["speculative"]


BENCHMARKS = {
    "kv-cache": (kv_cache, "decode tokens/s with cache / without (target >= 5)"),
    "hf-forward": (hf_forward, "llmfs forward time / transformers eager forward time (target <= 1.0)"),
    "decode-vs-hf": (decode_vs_hf, "llmfs greedy decode tokens/s / transformers generate, SDPA (target >= 1.3)"),
    "kernels": (kernels, "GPU only: Triton attention speed / SDPA flash at N=4096 (target >= 0.5), GB/s, TFLOP/s"),
    "moe-dispatch": (moe_dispatch, "llmfs MoE layer time / transformers Qwen3-MoE block, 64 experts top-8 (target <= 1.0)"),
    "gated-deltanet": (gated_deltanet, "chunked Gated DeltaNet / its recurrent loop at 4096 tokens (target >= 5)"),
    "speculative": (speculative, "greedy speculative decoding tokens/s / plain generate, matched draft (target >= 1.5)"),
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
