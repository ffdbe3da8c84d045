"""Real architectures as short configs, with their published hyperparameters.

`get(name)` gives the full-size config (build it on the meta device to count parameters without
allocating them); `tiny(name)` shrinks the same architecture so it runs on a laptop CPU, keeping
one layer of each kind of its layer pattern. `print(get(name))` describes it layer by layer.
"""

import difflib
import math

import dataclasses

from .attention import Attention
from .config import ModelConfig, RopeScaling, find_pattern, layer_pattern
from .linear_attention import LinearAttention
from .mla import MLA
from .moe import MoE
from .positions import Rope

GPT2 = dict(vocab_size=50257, context_length=1024, norm="layernorm", norm_eps=1e-5, positions="learned",
            ffn="gelu_mlp", tie_embeddings=True)
LLAMA3 = dict(vocab_size=128256, norm="rmsnorm", norm_eps=1e-5, positions="rope", rope_base=500000.0,
              ffn="swiglu", qkv_bias=False, attn_out_bias=False, mlp_bias=False)
QWEN3 = dict(vocab_size=151936, context_length=40960, norm="rmsnorm", norm_eps=1e-6, positions="rope",
             rope_base=1000000.0, ffn="swiglu", qk_norm="per_head", head_dim=128, n_kv_heads=8,
             qkv_bias=False, attn_out_bias=False, mlp_bias=False)

GEMMA3 = dict(context_length=131072, norm="offset_rmsnorm", norm_eps=1e-6, norm_placement="sandwich",
              positions="rope", rope_base=1e6, ffn="geglu", qk_norm="per_head", scale_embeddings=True,
              tie_embeddings=True, qkv_bias=False, attn_out_bias=False, mlp_bias=False)
OLMO3 = dict(vocab_size=100278, context_length=65536, norm="rmsnorm", norm_eps=1e-6, norm_placement="post_sublayer",
             qk_norm="full", positions="rope", rope_base=500000.0, ffn="swiglu", tie_embeddings=False, qkv_bias=False,
             attn_out_bias=False, mlp_bias=False,
             rope_scaling=RopeScaling("yarn", factor=8.0, original_context_length=8192,
                                      attention_factor=1.2079441541679836))

# gpt-oss (OpenAI, 2025), from the released config.json: biased q/k/v/o, YaRN x32 from 4096 with "truncate": false
# (the correction range 8.09..17.40 for head_dim 64 is not rounded to 8..18), MoE in every layer.
GPT_OSS = dict(vocab_size=201088, context_length=131072, d_model=2880, n_heads=64, n_kv_heads=8, head_dim=64,
               d_ff=2880, norm="rmsnorm", norm_eps=1e-5, positions="rope", rope_base=150000.0, ffn="swiglu",
               qkv_bias=True, attn_out_bias=True, mlp_bias=False, tie_embeddings=False,
               rope_scaling=RopeScaling("yarn", factor=32.0, original_context_length=4096, beta_fast=32.0,
                                        beta_slow=1.0, truncate=False))

DEEPSEEK = dict(d_model=7168, n_layers=61, d_ff=18432, norm="rmsnorm", norm_eps=1e-6, positions="rope", ffn="swiglu",
                qkv_bias=False, attn_out_bias=False, mlp_bias=False, tie_embeddings=False)

_CONFIGS = {
    # GPT-2 (Radford et al., 2019)
    "gpt2-124m": dict(GPT2, d_model=768, n_layers=12, n_heads=12),
    "gpt2-xl": dict(GPT2, d_model=1600, n_layers=48, n_heads=25),
    # Llama 3 (Dubey et al., 2024)
    "llama3-8b": dict(LLAMA3, context_length=8192, d_model=4096, n_layers=32, n_heads=32, n_kv_heads=8,
                      d_ff=14336, tie_embeddings=False),
    "llama3.2-1b": dict(LLAMA3, context_length=131072, d_model=2048, n_layers=16, n_heads=32, n_kv_heads=8,
                        d_ff=8192, tie_embeddings=True,
                        rope_scaling=RopeScaling("llama3", factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                                 original_context_length=8192)),
    # Qwen3 (Yang et al., 2025)
    "qwen3-0.6b": dict(QWEN3, d_model=1024, n_layers=28, n_heads=16, d_ff=3072, tie_embeddings=True),
    "qwen3-4b": dict(QWEN3, d_model=2560, n_layers=36, n_heads=32, d_ff=9728, tie_embeddings=True),
    "qwen3-32b": dict(QWEN3, d_model=5120, n_layers=64, n_heads=64, d_ff=25600, tie_embeddings=False),
    # OLMo 2 (OLMo et al., 2024): norms on the sublayer outputs, full-width QK-norm, MHA
    "olmo2-7b": dict(vocab_size=100352, context_length=4096, d_model=4096, n_layers=32, n_heads=32, d_ff=11008,
                     norm="rmsnorm", norm_eps=1e-6, norm_placement="post_sublayer", qk_norm="full",
                     positions="rope", rope_base=500000.0, ffn="swiglu", qkv_bias=False, attn_out_bias=False,
                     mlp_bias=False, tie_embeddings=False),
    # SmolLM3 (Hugging Face, 2025): Llama-like, GQA, no RoPE in every 4th layer (its layers: _PATTERNS).
    # transformers' SmolLM3Config defaults to rope_theta 2e6 and 32768 positions; the released model uses 5e6 and 65536.
    "smollm3-3b": dict(vocab_size=128256, context_length=65536, d_model=2048, n_layers=36, n_heads=16, n_kv_heads=4,
                       d_ff=11008, norm="rmsnorm", norm_eps=1e-6, positions="rope", rope_base=5000000.0, ffn="swiglu",
                       qkv_bias=False, attn_out_bias=False, mlp_bias=False, tie_embeddings=True),
    # Qwen3 MoE (Yang et al., 2025): every feed-forward layer a mixture of 128 experts, top-8 (_PATTERNS)
    "qwen3-30b-a3b": dict(QWEN3, d_model=2048, n_layers=48, n_heads=32, n_kv_heads=4, d_ff=6144,
                          tie_embeddings=False),
    "qwen3-235b-a22b": dict(QWEN3, d_model=4096, n_layers=94, n_heads=64, n_kv_heads=4, d_ff=12288,
                            tie_embeddings=False),
    # Llama 4 Maverick (Meta, 2025), text model: MoE (128 routed + 1 shared, top-1) on every other layer, no
    # RoPE in every 4th. Approximated without changing the count: its chunked attention (8192-token chunks) is
    # full attention here, the parameter-free L2 QK-norm is left out, and the router's sigmoid weight scales
    # the expert's output rather than its input.
    "llama4-maverick": dict(LLAMA3, context_length=1048576, d_model=5120, n_layers=48, n_heads=40, n_kv_heads=8,
                            d_ff=16384, vocab_size=202048, tie_embeddings=False),
    # Gemma 3 (Gemma Team, 2025): 5 local (1024- or 512-token windows, RoPE 10k) : 1 global (RoPE 1M) layers,
    # RMSNorm(1 + w) around each sublayer, GeGLU, per-head QK-norm, embeddings × √d_model (its layers: _PATTERNS);
    # attn_scale is query_pre_attn_scalar ** -0.5. Checked against the released config.json (text_config of
    # gemma-3-27b: head_dim 128, query_pre_attn_scalar 168, sliding_window 1024, rope_theta 1e6 global with linear x8,
    # rope_local_base_freq 1e4; gemma-3-270m: head_dim 256, query_pre_attn_scalar 256, sliding_window 512, 32768
    # positions, no rope_scaling; both 5 sliding : 1 full).
    "gemma3-27b": dict(GEMMA3, vocab_size=262208, d_model=5376, n_layers=62, n_heads=32, n_kv_heads=16, head_dim=128,
                       d_ff=21504, attn_scale=168 ** -0.5, rope_scaling=RopeScaling("linear", factor=8.0)),
    "gemma3-270m": dict(GEMMA3, vocab_size=262144, context_length=32768, d_model=640, n_layers=18, n_heads=4,
                        n_kv_heads=1, head_dim=256, d_ff=2048, attn_scale=256 ** -0.5),
    # OLMo 3 (Olmo Team, 2025): OLMo 2's block; 3 sliding-window (4096) : 1 full layer, YaRN on the full ones.
    # Checked against config.json (7B: MHA 32 heads, 11008; 32B: 40 q / 8 kv heads, 27648; both vocab 100278, 65536
    # positions, rope_theta 5e5, YaRN x8 from 8192 with attention_factor 1.2079, layer_types 3 sliding : 1 full).
    "olmo3-7b": dict(OLMO3, d_model=4096, n_layers=32, n_heads=32, d_ff=11008),
    "olmo3-32b": dict(OLMO3, d_model=5120, n_layers=64, n_heads=40, n_kv_heads=8, head_dim=128, d_ff=27648),
    # Mistral Small 3.1 (Mistral AI, 2025), its text model: Llama-like GQA; no sliding window any more
    # (config.json's text_config: sliding_window null, rope_theta 1e9, 40 layers, 32 q / 8 kv heads of 128, 32768).
    "mistral-small-3.1": dict(LLAMA3, vocab_size=131072, context_length=131072, d_model=5120, n_layers=40,
                              n_heads=32, n_kv_heads=8, head_dim=128, d_ff=32768, rope_base=1e9,
                              tie_embeddings=False),
    # DeepSeek V3 (DeepSeek-AI, 2024): multi-head latent attention in every layer (chapter 4), 3 dense layers, then
    # MoE layers of 256 routed experts (sigmoid router, 8 groups of which 4 may be chosen, top-8) + 1 shared. The
    # published 671B leaves out the multi-token-prediction module (the checkpoint's 685B includes it).
    "deepseek-v3": dict(DEEPSEEK, vocab_size=129280, context_length=163840, n_heads=128, rope_base=10000.0,
                        rope_scaling=RopeScaling("yarn", factor=40.0, original_context_length=4096, mscale=1.0,
                                                 mscale_all_dim=1.0)),
    # Kimi K2 (Kimi Team, 2025): DeepSeek V3's architecture with 64 heads, 384 experts, one dense layer.
    "kimi-k2": dict(DEEPSEEK, vocab_size=163840, context_length=131072, n_heads=64, rope_base=50000.0,
                    rope_scaling=RopeScaling("yarn", factor=32.0, original_context_length=4096, mscale=1.0,
                                             mscale_all_dim=1.0)),
    # gpt-oss (OpenAI, 2025): its layers in _PATTERNS
    "gpt-oss-20b": dict(GPT_OSS, n_layers=24),
    "gpt-oss-120b": dict(GPT_OSS, n_layers=36),
    # Qwen3-Next-80B-A3B (Qwen Team, 2025), its config.json: 3 Gated DeltaNet layers (16 qk / 32 v heads of 128,
    # conv 4) per gated full-attention layer (16 heads of 256, 2 K/V heads, per-head QK-norm, RoPE on a quarter of
    # each head, base 1e7); every layer an MoE of 512 experts of 512, top-10, + 1 shared expert behind a sigmoid gate.
    "qwen3-next-80b-a3b": dict(QWEN3, vocab_size=151936, context_length=262144, d_model=2048, n_layers=48, n_heads=16,
                               n_kv_heads=2, head_dim=256, d_ff=5120, rope_base=10000000.0, tie_embeddings=False),
    # Kimi Linear 48B-A3B (Kimi Team, 2025), its config.json: KDA (32 heads of 128, conv 4) in 20 of 27 layers, MLA
    # without positions (32 heads, latent 512, no query bottleneck) in layers 4, 8, ..., 24 and 27 (1-based); layer 1
    # a dense SwiGLU of 9216, the rest MoE: 256 experts of 1024, top-8, sigmoid router, scaling 2.446, 1 shared.
    "kimi-linear-48b-a3b": dict(vocab_size=163840, context_length=1048576, d_model=2304, n_layers=27, n_heads=32,
                                d_ff=9216, norm="rmsnorm", norm_eps=1e-5, positions="none", ffn="swiglu",
                                qkv_bias=False, attn_out_bias=False, mlp_bias=False, tie_embeddings=False),
}

QWEN3_MOE = {"qwen3-30b-a3b": MoE(n_experts=128, top_k=8, d_expert=768),
             "qwen3-235b-a22b": MoE(n_experts=128, top_k=8, d_expert=1536)}
LLAMA4_MOE = MoE(n_experts=128, top_k=1, d_expert=8192, n_shared=1, router="sigmoid", norm_topk=False)


def _moe_every(k: int, moe: MoE, nope_every: int | None = None):
    """A pattern: the feed-forward network of every k-th layer (1-based) is `moe`; with `nope_every`, every
    such layer also drops RoPE (period = lcm of the two)."""

    def layers(config: ModelConfig):
        dense = config.layers[0]
        period = math.lcm(k, nope_every or 1)
        specs = []
        for i in range(1, period + 1):
            spec = dense.replace(ffn=moe) if i % k == 0 else dense
            specs.append(spec.replace(positions=None) if nope_every and i % nope_every == 0 else spec)
        return layer_pattern(config.n_layers, period=specs)

    return layers


def _latent_moe(attention: MLA, first_dense: int, moe: MoE):
    """A pattern: `attention` (MLA) in every layer; the first `first_dense` layers keep the config's dense SwiGLU,
    every later one is `moe` (DeepSeek V3, Kimi K2)."""

    def layers(config: ModelConfig):
        dense = config.layers[0].replace(attention=attention)
        return layer_pattern(config.n_layers, period=(dense.replace(ffn=moe),), first=(dense,) * first_dense)

    return layers


def _local_global(k: int, window: int, local_base: float):
    """A pattern: k - 1 local layers (a sliding `window`, plain RoPE with `local_base`) then one global layer,
    which keeps the config's RoPE (base and scaling): Gemma 3 (k = 6) and OLMo 3 (k = 4)."""

    def layers(config: ModelConfig):
        glob = config.layers[0]
        local = glob.replace(attention=dataclasses.replace(glob.attention, window=window),
                             positions=Rope(base=local_base))
        return layer_pattern(config.n_layers, period=(local,) * (k - 1) + (glob,))

    return layers


def _nope_every(k: int):
    """A pattern: RoPE in every layer except every k-th (1-based), which has no positions (SmolLM3)."""

    def layers(config: ModelConfig):
        rope = config.layers[0]
        return layer_pattern(config.n_layers, period=(rope,) * (k - 1) + (rope.replace(positions=None),))

    return layers


def _gpt_oss(n_experts: int):
    """A pattern: sliding-window (128) and full attention layers alternating, learned sinks in both, and in every
    layer a gpt-oss MoE (top-4 of n_experts, biased router and experts, the k weights renormalised, clamped SwiGLU)."""
    moe = MoE(n_experts=n_experts, top_k=4, d_expert=2880, norm_topk=True, router_bias=True, expert_bias=True,
              swiglu_limit=7.0, swiglu_alpha=1.702)

    def layers(config: ModelConfig):
        full = config.layers[0].replace(ffn=moe)
        full = full.replace(attention=dataclasses.replace(full.attention, sinks=True))
        sliding = full.replace(attention=dataclasses.replace(full.attention, window=128))
        return layer_pattern(config.n_layers, period=(sliding, full))

    return layers


def _hybrid_linear(k: int, linear: LinearAttention, full: Attention, moe: MoE, rotary_fraction: float):
    """A pattern: k - 1 linear-attention layers (no positions) then one full-attention layer (RoPE on
    `rotary_fraction` of each head), every feed-forward layer `moe` (Qwen3-Next)."""

    def layers(config: ModelConfig):
        base = config.layers[0].replace(ffn=moe)
        rope = Rope(base=base.positions.base, scaling=base.positions.scaling, fraction=rotary_fraction)
        return layer_pattern(config.n_layers, period=(base.replace(attention=linear, positions=None),) * (k - 1)
                             + (base.replace(attention=full, positions=rope),))

    return layers


def _kimi_linear(full_layers: tuple, linear: LinearAttention, full: MLA, moe: MoE, first_dense: int):
    """Kimi Linear's layers: `full` (MLA, no positions) at the 1-based `full_layers`, `linear` (KDA) elsewhere; the
    first `first_dense` layers keep the config's dense SwiGLU, the rest are `moe`."""

    def layers(config: ModelConfig):
        dense = config.layers[0].replace(positions=None)
        return tuple(dense.replace(attention=full if i + 1 in full_layers else linear,
                                   **({} if i < first_dense else {"ffn": moe})) for i in range(config.n_layers))

    return layers


# Architectures whose layers differ: config (uniform) -> its per-layer specs, laid over the config's depth.
_PATTERNS = {
    "smollm3-3b": _nope_every(4),  # transformers' SmolLM3Config: no_rope_layer_interval=4
    "qwen3-30b-a3b": _moe_every(1, QWEN3_MOE["qwen3-30b-a3b"]),
    "qwen3-235b-a22b": _moe_every(1, QWEN3_MOE["qwen3-235b-a22b"]),
    "llama4-maverick": _moe_every(2, LLAMA4_MOE, nope_every=4),  # interleave_moe_layer_step=2, no_rope every 4th
    "gemma3-27b": _local_global(6, window=1024, local_base=10000.0),
    "gemma3-270m": _local_global(6, window=512, local_base=10000.0),
    "olmo3-7b": _local_global(4, window=4096, local_base=500000.0),
    "olmo3-32b": _local_global(4, window=4096, local_base=500000.0),
    "deepseek-v3": _latent_moe(MLA(n_heads=128), 3, MoE(n_experts=256, top_k=8, d_expert=2048, n_shared=1,
                                                         router="sigmoid", n_group=8, topk_group=4,
                                                         routed_scaling=2.5)),
    "gpt-oss-20b": _gpt_oss(32),
    "gpt-oss-120b": _gpt_oss(128),
    "kimi-k2": _latent_moe(MLA(n_heads=64), 1, MoE(n_experts=384, top_k=8, d_expert=2048, n_shared=1,
                                                   router="sigmoid", routed_scaling=2.827)),
    "qwen3-next-80b-a3b": _hybrid_linear(
        4, LinearAttention("gated_deltanet", n_heads=16, n_v_heads=32, head_dim=128, v_head_dim=128, conv_size=4,
                           output_gate="silu"),
        Attention(16, 2, 256, qk_norm="per_head", output_gate=True),
        MoE(n_experts=512, top_k=10, d_expert=512, n_shared=1, shared_gate=True), rotary_fraction=0.25),
    "kimi-linear-48b-a3b": _kimi_linear(
        (4, 8, 12, 16, 20, 24, 27),
        LinearAttention("kda", n_heads=32, head_dim=128, conv_size=4, output_gate="sigmoid", low_rank=128),
        MLA(n_heads=32, kv_lora_rank=512, q_lora_rank=None, qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128),
        MoE(n_experts=256, top_k=8, d_expert=1024, n_shared=1, router="sigmoid", routed_scaling=2.446), first_dense=1),
}

# Total parameter counts as published on each model's card or in its paper, for comparison.
PUBLISHED_PARAMETERS = {
    "gpt2-124m": 124_000_000,
    "gpt2-xl": 1_558_000_000,
    "llama3-8b": 8_030_000_000,
    "llama3.2-1b": 1_230_000_000,
    "qwen3-0.6b": 600_000_000,
    "qwen3-4b": 4_000_000_000,
    "qwen3-32b": 32_800_000_000,
    "olmo2-7b": 7_300_000_000,
    "smollm3-3b": 3_080_000_000,
    "qwen3-30b-a3b": 30_500_000_000,
    "qwen3-235b-a22b": 235_000_000_000,
    "llama4-maverick": 400_000_000_000,
    "gemma3-27b": 27_000_000_000,  # the text model; the released checkpoint adds a SigLIP vision encoder
    "gemma3-270m": 270_000_000,  # 170M embedding + 100M in the blocks (its model card)
    "olmo3-7b": 7_300_000_000,
    "olmo3-32b": 32_200_000_000,
    "mistral-small-3.1": 24_000_000_000,  # text model and Pixtral vision encoder together (see tests/test_windows_zoo.py)
    "deepseek-v3": 671_000_000_000,  # without the 14B multi-token-prediction module
    "kimi-k2": 1_040_000_000_000,  # "1T" on the model card; 1.04T in the technical report
    "gpt-oss-20b": 20_900_000_000,  # gpt-oss model card (OpenAI, 2025), table 1
    "gpt-oss-120b": 116_800_000_000,
    # "80B in total": the checkpoint's 81.3B also holds the multi-token-prediction layer (a full-attention layer
    # with its MoE, ~1.5B), which llmfs and transformers leave out; their count is 79.7B (tests/test_zoo_hybrids.py).
    "qwen3-next-80b-a3b": 80_000_000_000,
    # "48B total": llmfs and transformers count 49.1B for its config.json (embeddings untied, 0.75B together)
    "kimi-linear-48b-a3b": 48_000_000_000,
}

# Parameters used per token as published (MoE models: the "A3B" in a name), for comparison with count.active.
PUBLISHED_ACTIVE_PARAMETERS = {
    "qwen3-30b-a3b": 3_300_000_000,
    "qwen3-235b-a22b": 22_000_000_000,
    "llama4-maverick": 17_000_000_000,
    "deepseek-v3": 37_000_000_000,
    "kimi-k2": 32_000_000_000,
    "gpt-oss-20b": 3_610_000_000,
    "gpt-oss-120b": 5_130_000_000,
    "qwen3-next-80b-a3b": 3_000_000_000,  # "3B activated"
    "kimi-linear-48b-a3b": 3_000_000_000,  # "3B activated"
}


# Mixtral 8x7B (Jiang et al., 2024), from mistralai/Mixtral-8x7B-v0.1's config.json: every FFN is a softmax
# top-2 of 8 SwiGLU experts of 14336; 46.7B total, 12.9B active on its model card.
_CONFIGS["mixtral-8x7b"] = dict(vocab_size=32000, context_length=32768, d_model=4096, n_layers=32, n_heads=32,
                                n_kv_heads=8, d_ff=14336, norm="rmsnorm", norm_eps=1e-5, positions="rope",
                                rope_base=1e6, ffn="swiglu", tie_embeddings=False, qkv_bias=False,
                                attn_out_bias=False, mlp_bias=False)
_PATTERNS["mixtral-8x7b"] = _moe_every(1, MoE(n_experts=8, top_k=2, d_expert=14336))
PUBLISHED_PARAMETERS["mixtral-8x7b"] = 46_700_000_000
PUBLISHED_ACTIVE_PARAMETERS["mixtral-8x7b"] = 12_900_000_000

# What a published active count leaves out, where it is not all a token uses (count_parameters' active): gpt-oss's
# model card leaves out the input embedding table (a lookup, not a matmul); Qwen3-Next's and Kimi Linear's
# "3B activated" leave out the embedding and the output matrix both.
PUBLISHED_ACTIVE_LEAVES_OUT = {"gpt-oss-20b": "embedding", "gpt-oss-120b": "embedding",
                               "qwen3-next-80b-a3b": "embedding and output",
                               "kimi-linear-48b-a3b": "embedding and output"}


def active_as_published(name: str, count=None) -> int:
    """Counted active parameters of zoo model `name` less what its published active count leaves out.

    `count`: its `count_parameters` result, if already at hand (counting the largest models takes seconds)."""
    from .counting import count_parameters

    config = get(name)
    count = count_parameters(config) if count is None else count
    left_out = PUBLISHED_ACTIVE_LEAVES_OUT.get(name)
    matrices = {None: 0, "embedding": 1, "embedding and output": 1 if config.tie_embeddings else 2}[left_out]
    return count.active - matrices * count.embedding


def names() -> list[str]:
    """The architectures the zoo knows, in the order the course meets them."""
    return list(_CONFIGS)


def get(name: str) -> ModelConfig:
    """The published config of architecture `name` (see `names()`)."""
    if name not in _CONFIGS:
        close = difflib.get_close_matches(str(name), names(), n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise KeyError(f"unknown zoo model {name!r}.{hint} Known: {', '.join(names())}.")
    config = ModelConfig(name=name, **_CONFIGS[name])
    pattern = _PATTERNS.get(name)
    return config if pattern is None else config.replace(layers=pattern(config))


def tiny(name: str, **overrides) -> ModelConfig:
    """Architecture `name` shrunk for tests and the CPU: width 64, every mechanism shrunk (`Settings.tiny`:
    4 heads of 16, small FFNs), and its layer pattern kept with one layer of each kind (at least 2 layers).

    MHA stays MHA (4 K/V heads), GQA keeps sharing (2 K/V heads), MQA keeps one. Any field can be
    overridden, e.g. `tiny("llama3-8b", vocab_size=50257)` to train with the GPT-2 tokenizer, or
    `n_layers=8` to lay the same pattern deeper.
    """
    config = get(name)
    first, period = find_pattern(config.layers)
    first = tuple(dict.fromkeys(spec.tiny() for spec in first))  # one of each distinct first layer
    period = tuple(spec.tiny() for spec in period)
    n_layers = overrides.pop("n_layers", max(2, len(first) + len(period)))
    small = ModelConfig(vocab_size=512, context_length=256, d_model=64, n_layers=n_layers,
                        layers=layer_pattern(n_layers, period, first[:n_layers]), norm=config.norm,
                        norm_eps=config.norm_eps, learned_positions=config.learned_positions,
                        tie_embeddings=config.tie_embeddings, scale_embeddings=config.scale_embeddings,
                        logit_softcap=config.logit_softcap, name=f"{name} (tiny)")
    return small.replace(**overrides) if overrides else small
