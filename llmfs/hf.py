"""Bridge to Hugging Face `transformers`: build an llmfs model with the same weights as a transformers
model, so every mechanism can be checked against the reference implementation.

Each family states its config mapping and its weight names; a family that differs from another only
a little (Qwen3 from Llama) subclasses it. `transformers` is needed only by the functions that take
its objects, never to import llmfs.
"""

import dataclasses
import os

import torch

from .attention import Attention
from .config import LayerSpec, ModelConfig, RopeScaling
from .ffn import MLP
from .linear_attention import LinearAttention
from .mla import DSA, MLA
from .model import Transformer
from .moe import MoE
from .positions import Rope, halves_from_pairs


class ConversionError(ValueError):
    """A transformers model or config llmfs cannot reproduce exactly."""


def _require(hf_config, attribute: str, allowed) -> None:
    value = getattr(hf_config, attribute, None)
    if value not in allowed:
        raise ConversionError(
            f"{hf_config.model_type}: {attribute}={value!r} is not supported; "
            f"llmfs reproduces {sorted(map(str, allowed))}."
        )


def _rope_scaling(model_type: str, rope: dict, mscale: bool = False) -> RopeScaling | None:
    """The llmfs RopeScaling of transformers' `rope_parameters` (chapter 8), or None for plain RoPE.
    `mscale`: the family applies DeepSeek's YaRN mscale terms (MLA attention)."""
    if rope.get("partial_rotary_factor", 1.0) != 1.0:
        raise ConversionError(f"{model_type}: partial_rotary_factor={rope['partial_rotary_factor']!r} is not "
                              "supported for this family; its attention rotates every dimension.")
    kind = rope.get("rope_type", "default")
    if kind == "default":
        return None
    if kind == "linear":
        return RopeScaling("linear", factor=rope["factor"])
    if kind == "llama3":
        return RopeScaling("llama3", factor=rope["factor"], low_freq_factor=rope["low_freq_factor"],
                           high_freq_factor=rope["high_freq_factor"],
                           original_context_length=rope["original_max_position_embeddings"])
    if kind == "yarn":
        checks = () if mscale else (("mscale", (None,)), ("mscale_all_dim", (None,)))
        for key, allowed in checks:
            if rope.get(key) not in allowed:
                raise ConversionError(f"{model_type}: yarn {key}={rope[key]!r} is not supported; llmfs reproduces "
                                      f"{list(allowed)}.")
        if rope.get("factor") is None:
            raise ConversionError(f"{model_type}: yarn needs an explicit factor.")
        return RopeScaling("yarn", factor=rope["factor"], beta_fast=rope.get("beta_fast") or 32.0,
                           beta_slow=rope.get("beta_slow") or 1.0, attention_factor=rope.get("attention_factor"),
                           original_context_length=rope["original_max_position_embeddings"],
                           mscale=rope.get("mscale"), mscale_all_dim=rope.get("mscale_all_dim"),
                           truncate=rope.get("truncate", True))
    raise ConversionError(f"{model_type}: rope_type={kind!r} has no llmfs RopeScaling.")


class Gpt2Family:
    """GPT-2: learned positions, LayerNorm, GELU MLP, fused QKV stored as Conv1D (in, out) matrices."""

    @staticmethod
    def config(hf) -> ModelConfig:
        _require(hf, "activation_function", ("gelu_new", "gelu_pytorch_tanh"))
        _require(hf, "scale_attn_weights", (True,))
        _require(hf, "scale_attn_by_inverse_layer_idx", (False,))
        _require(hf, "reorder_and_upcast_attn", (False,))
        return ModelConfig(
            vocab_size=hf.vocab_size, context_length=hf.n_positions, d_model=hf.n_embd, n_layers=hf.n_layer,
            n_heads=hf.n_head, d_ff=hf.n_inner or 4 * hf.n_embd, norm="layernorm", norm_eps=hf.layer_norm_epsilon,
            positions="learned", ffn="gelu_mlp", tie_embeddings=hf.tie_word_embeddings, name="gpt2 (from transformers)",
        )

    @staticmethod
    def weights(hf_state: dict, config: ModelConfig) -> dict:
        d = config.d_model
        out = {
            "token_embedding.weight": hf_state["transformer.wte.weight"],
            "position_embedding.embedding.weight": hf_state["transformer.wpe.weight"],
            "final_norm.weight": hf_state["transformer.ln_f.weight"],
            "final_norm.bias": hf_state["transformer.ln_f.bias"],
            "lm_head.weight": hf_state.get("lm_head.weight", hf_state["transformer.wte.weight"]),
        }
        for i in range(config.n_layers):
            h, b = f"transformer.h.{i}.", f"blocks.{i}."
            qkv_w, qkv_b = hf_state[h + "attn.c_attn.weight"], hf_state[h + "attn.c_attn.bias"]  # (d, 3d), (3d,)
            for j, name in enumerate(("q_proj", "k_proj", "v_proj")):
                out[b + f"attention.sublayer.{name}.weight"] = qkv_w[:, j * d:(j + 1) * d].t()
                out[b + f"attention.sublayer.{name}.bias"] = qkv_b[j * d:(j + 1) * d]
            pairs = {
                "attention.norm": "ln_1", "ffn.norm": "ln_2",
                "attention.sublayer.out_proj": "attn.c_proj",
                "ffn.sublayer.fc_in": "mlp.c_fc", "ffn.sublayer.fc_out": "mlp.c_proj",
            }
            for ours, theirs in pairs.items():
                weight = hf_state[h + theirs + ".weight"]
                out[b + ours + ".weight"] = weight.t() if "sublayer" in ours else weight  # Conv1D is (in, out)
                out[b + ours + ".bias"] = hf_state[h + theirs + ".bias"]
        return out


class LlamaFamily:
    """Llama: RoPE (optionally Llama 3 scaled), RMSNorm, SwiGLU, GQA, separate q/k/v projections."""

    rope_types = ("default", "linear", "yarn", "llama3")
    required = {"hidden_act": ("silu",)}  # transformers setting -> the values llmfs reproduces
    extra_fields = {}  # ModelConfig fields a family sets beyond those read from its config

    @classmethod
    def config(cls, hf) -> ModelConfig:
        for attribute, allowed in cls.required.items():
            _require(hf, attribute, allowed)
        return ModelConfig(**cls.config_fields(hf), **cls.extra_fields)

    @classmethod
    def config_fields(cls, hf) -> dict:
        rope = dict(getattr(hf, "rope_parameters", None) or {})
        rope_type = rope.get("rope_type", "default")
        if rope_type not in cls.rope_types:
            raise ConversionError(
                f"{hf.model_type}: rope_type={rope_type!r} is not supported; llmfs reproduces {list(cls.rope_types)}."
            )
        scaling = _rope_scaling(hf.model_type, rope)
        bias = bool(getattr(hf, "attention_bias", False))
        return dict(
            vocab_size=hf.vocab_size, context_length=hf.max_position_embeddings, d_model=hf.hidden_size,
            n_layers=hf.num_hidden_layers, n_heads=hf.num_attention_heads, n_kv_heads=hf.num_key_value_heads,
            head_dim=getattr(hf, "head_dim", None) or hf.hidden_size // hf.num_attention_heads,
            d_ff=hf.intermediate_size, norm="rmsnorm", norm_eps=hf.rms_norm_eps, positions="rope",
            rope_base=rope.get("rope_theta", 10000.0), rope_scaling=scaling, ffn="swiglu",
            qkv_bias=bias, attn_out_bias=bias, mlp_bias=bool(getattr(hf, "mlp_bias", False)),
            tie_embeddings=hf.tie_word_embeddings, name=f"{hf.model_type} (from transformers)",
        )

    layer_names = {  # llmfs module -> transformers module, inside each layer
        "attention.norm": "input_layernorm",
        "ffn.norm": "post_attention_layernorm",
        "attention.sublayer.q_proj": "self_attn.q_proj",
        "attention.sublayer.k_proj": "self_attn.k_proj",
        "attention.sublayer.v_proj": "self_attn.v_proj",
        "attention.sublayer.out_proj": "self_attn.o_proj",
        "ffn.sublayer.gate": "mlp.gate_proj",
        "ffn.sublayer.up": "mlp.up_proj",
        "ffn.sublayer.down": "mlp.down_proj",
    }

    @classmethod
    def weights(cls, hf_state: dict, config: ModelConfig) -> dict:
        out = {
            "token_embedding.weight": hf_state["model.embed_tokens.weight"],
            "final_norm.weight": hf_state["model.norm.weight"],
            "lm_head.weight": hf_state.get("lm_head.weight", hf_state["model.embed_tokens.weight"]),
        }
        for i in range(config.n_layers):
            for ours, theirs in cls.layer_names.items():
                for suffix in (".weight", ".bias"):
                    key = f"model.layers.{i}.{theirs}{suffix}"
                    if key in hf_state:
                        out[f"blocks.{i}.{ours}{suffix}"] = hf_state[key]
        return out


class Qwen3Family(LlamaFamily):
    """Qwen3 = Llama + RMSNorm on each head's queries and keys (QK-norm), and an explicit head_dim."""

    rope_types = ("default",)
    required = {**LlamaFamily.required, "use_sliding_window": (False, None)}
    extra_fields = {"qk_norm": "per_head"}
    layer_names = {
        **LlamaFamily.layer_names,
        "attention.sublayer.q_norm": "self_attn.q_norm",
        "attention.sublayer.k_norm": "self_attn.k_norm",
    }


class Olmo2Family(LlamaFamily):
    """OLMo 2 = Llama with the norms moved onto each sublayer's output, inside the residual branch
    (x + norm(f(x))), and RMSNorm over the whole query and key projections (full-width QK-norm).
    """

    rope_types = ("default",)
    layer_names = {
        **LlamaFamily.layer_names,
        "attention.norm": "post_attention_layernorm",
        "ffn.norm": "post_feedforward_layernorm",
        "attention.sublayer.q_norm": "self_attn.q_norm",
        "attention.sublayer.k_norm": "self_attn.k_norm",
    }
    extra_fields = {"norm_placement": "post_sublayer", "qk_norm": "full"}


class SmolLM3Family(LlamaFamily):
    """SmolLM3 = Llama whose `no_rope_layers` (1 = RoPE, 0 = none) leave RoPE out of some layers (NoPE)."""

    required = {**LlamaFamily.required, "use_sliding_window": (False, None)}

    @classmethod
    def config(cls, hf) -> ModelConfig:
        uniform = super().config(hf)
        if "sliding_attention" in (getattr(hf, "layer_types", None) or ()):
            raise ConversionError(f"{hf.model_type}: sliding-window layers are not supported.")
        flags = list(hf.no_rope_layers)
        if len(flags) < hf.num_hidden_layers or set(flags) - {0, 1}:
            raise ConversionError(f"{hf.model_type}: no_rope_layers must hold a 0 or 1 for each of the "
                                  f"{hf.num_hidden_layers} layers, got {flags!r}.")
        spec = uniform.layers[0]
        layers = tuple(spec if flag else spec.replace(positions=None) for flag in flags[:hf.num_hidden_layers])
        return uniform.replace(layers=layers)


class DeepseekV3Family(LlamaFamily):
    """DeepSeek-V3 (also Kimi K2): multi-head latent attention (chapter 4) with DeepSeek's YaRN, interleaved
    RoPE on the rotary parts, dense SwiGLU layers up to `first_k_dense_replace`, then mixture-of-experts layers
    (chapter 6): a sigmoid router with a selection bias and expert groups, plus shared experts."""

    rope_types = ("default", "yarn")
    required = {**LlamaFamily.required, "attention_bias": (False, None), "rope_interleave": (True,)}
    layer_names = {
        "attention.norm": "input_layernorm",
        "ffn.norm": "post_attention_layernorm",
        "attention.sublayer.q_down": "self_attn.q_a_proj",
        "attention.sublayer.q_norm": "self_attn.q_a_layernorm",
        "attention.sublayer.q_up": "self_attn.q_b_proj",
        "attention.sublayer.kv_down": "self_attn.kv_a_proj_with_mqa",
        "attention.sublayer.kv_norm": "self_attn.kv_a_layernorm",
        "attention.sublayer.kv_up": "self_attn.kv_b_proj",
        "attention.sublayer.out_proj": "self_attn.o_proj",
        "ffn.sublayer.gate": "mlp.gate_proj",
        "ffn.sublayer.up": "mlp.up_proj",
        "ffn.sublayer.down": "mlp.down_proj",
    }

    @classmethod
    def dense_layers(cls, hf) -> int:
        return hf.first_k_dense_replace

    @classmethod
    def attention(cls, hf) -> MLA:
        return MLA(hf.num_attention_heads, hf.kv_lora_rank, hf.q_lora_rank, hf.qk_nope_head_dim,
                   hf.qk_rope_head_dim, hf.v_head_dim)

    @classmethod
    def config(cls, hf) -> ModelConfig:
        for attribute, allowed in cls.required.items():
            _require(hf, attribute, allowed)
        _require(hf, "topk_method", ("noaux_tc", None))
        if hf.num_key_value_heads != hf.num_attention_heads:
            raise ConversionError(f"{hf.model_type}: num_key_value_heads={hf.num_key_value_heads} must equal "
                                  f"num_attention_heads={hf.num_attention_heads} for MLA.")
        rope = dict(getattr(hf, "rope_parameters", None) or {})
        if rope.get("rope_type", "default") not in cls.rope_types:
            raise ConversionError(f"{hf.model_type}: rope_type={rope.get('rope_type')!r} is not supported; "
                                  f"llmfs reproduces {list(cls.rope_types)}.")
        layer = LayerSpec(cls.attention(hf), MLP(hf.intermediate_size),
                          positions=Rope(rope.get("rope_theta", 10000.0), _rope_scaling(hf.model_type, rope, True)))
        moe = layer.replace(ffn=MoE(
            n_experts=hf.n_routed_experts, top_k=hf.num_experts_per_tok, d_expert=hf.moe_intermediate_size,
            n_shared=hf.n_shared_experts or 0, router="sigmoid", norm_topk=hf.norm_topk_prob, n_group=hf.n_group,
            topk_group=hf.topk_group, routed_scaling=hf.routed_scaling_factor))
        dense = min(cls.dense_layers(hf), hf.num_hidden_layers)
        return ModelConfig(vocab_size=hf.vocab_size, context_length=hf.max_position_embeddings,
                           d_model=hf.hidden_size, layers=(layer,) * dense + (moe,) * (hf.num_hidden_layers - dense),
                           norm="rmsnorm", norm_eps=hf.rms_norm_eps, tie_embeddings=hf.tie_word_embeddings,
                           name=f"{hf.model_type} (from transformers)")

    @classmethod
    def weights(cls, hf_state: dict, config: ModelConfig) -> dict:
        """The Llama-style mapping, with the rotary rows of the query and kv_down projections moved from
        DeepSeek's interleaved pairs to llmfs's split halves (the dot products are unchanged)."""
        out = super().weights(hf_state, config)
        for i, spec in enumerate(config.layers):
            s, prefix = spec.attention, f"blocks.{i}.attention.sublayer."
            if s.q_lora_rank is None:  # full-rank queries
                out[prefix + "q_up.weight"] = hf_state[f"model.layers.{i}.self_attn.q_proj.weight"]
            halves = halves_from_pairs(s.qk_rope_head_dim)
            q = out[prefix + "q_up.weight"].view(s.n_heads, s.qk_head_dim, -1)
            q = torch.cat((q[:, :s.qk_nope_head_dim], q[:, s.qk_nope_head_dim:][:, halves]), dim=1)
            out[prefix + "q_up.weight"] = q.flatten(0, 1)
            kv = out[prefix + "kv_down.weight"]
            out[prefix + "kv_down.weight"] = torch.cat((kv[:s.kv_lora_rank], kv[s.kv_lora_rank:][halves]))
            if isinstance(spec.ffn, MoE):
                theirs, ours = f"model.layers.{i}.mlp.", f"blocks.{i}.ffn.sublayer."
                moe = moe_weights_from_transformers(hf_state, theirs)
                moe["selection_bias"] = hf_state[theirs + "gate.e_score_correction_bias"]
                for name in ("gate", "up", "down"):
                    if spec.ffn.n_shared:
                        moe[f"shared.{name}.weight"] = hf_state[f"{theirs}shared_experts.{name}_proj.weight"]
                out.update({ours + name: tensor for name, tensor in moe.items()})
        return out


class DeepseekV32Family(DeepseekV3Family):
    """DeepSeek-V3.2 = DeepSeek-V3 + DeepSeek Sparse Attention: a lightning indexer per layer (split-halves RoPE
    on its first dims) picks the `index_topk` tokens each query attends to."""

    required = {**LlamaFamily.required, "attention_bias": (False, None)}
    layer_names = {
        **DeepseekV3Family.layer_names,
        "attention.sublayer.indexer.q_proj": "self_attn.indexer.wq_b",
        "attention.sublayer.indexer.k_proj": "self_attn.indexer.wk",
        "attention.sublayer.indexer.k_norm": "self_attn.indexer.k_norm",
        "attention.sublayer.indexer.head_weights": "self_attn.indexer.weights_proj",
    }

    @classmethod
    def dense_layers(cls, hf) -> int:
        types = list(hf.mlp_layer_types)  # "dense" or "sparse" (MoE) per layer
        return types.index("sparse") if "sparse" in types else len(types)

    @classmethod
    def attention(cls, hf) -> DSA:
        return DSA(hf.num_attention_heads, hf.kv_lora_rank, hf.q_lora_rank, hf.qk_nope_head_dim, hf.qk_rope_head_dim,
                   hf.v_head_dim, hf.index_n_heads, hf.index_head_dim, hf.index_topk)




def moe_weights_from_transformers(hf_state: dict, prefix: str, router: str = "gate.weight") -> dict:
    """One MoE block's weights: transformers' stacked experts, each (out, in), -> llmfs's (in, out) stacks."""
    router_weight = hf_state[prefix + router]
    out = {
        "router.weight": router_weight,
        "selection_bias": router_weight.new_zeros(router_weight.shape[0]),  # no selection bias in these families
        "experts.w_in": hf_state[prefix + "experts.gate_up_proj"].transpose(1, 2).contiguous(),  # (E, d, 2 d_e)
        "experts.w_out": hf_state[prefix + "experts.down_proj"].transpose(1, 2).contiguous(),  # (E, d_e, d)
    }
    return out


class SparseFamily:
    """What MoE families add to a dense one: an `MoE` feed-forward layer in the layers `sparse` picks.

    Combine before a dense family: `class MixtralFamily(SparseFamily, LlamaFamily)`.
    """

    @classmethod
    def moe(cls, hf) -> MoE:
        return MoE(n_experts=hf.num_local_experts, top_k=hf.num_experts_per_tok, d_expert=hf.intermediate_size,
                   norm_topk=getattr(hf, "norm_topk_prob", True))

    @classmethod
    def sparse(cls, hf, layer: int) -> bool:
        return True

    @classmethod
    def config(cls, hf) -> ModelConfig:
        uniform = super().config(hf)
        moe = cls.moe(hf)
        return uniform.replace(layers=tuple(spec.replace(ffn=moe) if cls.sparse(hf, i) else spec
                                            for i, spec in enumerate(uniform.layers)))

    @classmethod
    def weights(cls, hf_state: dict, config: ModelConfig) -> dict:
        out = super().weights(hf_state, config)
        for i, spec in enumerate(config.layers):
            if isinstance(spec.ffn, MoE):
                moe = moe_weights_from_transformers(hf_state, f"model.layers.{i}.mlp.")
                out.update({f"blocks.{i}.ffn.sublayer.{name}": tensor for name, tensor in moe.items()})
        return out


class Qwen3MoeFamily(SparseFamily, Qwen3Family):
    """Qwen3-MoE = Qwen3 whose feed-forward layers are MoEs, except `mlp_only_layers` and the layers
    `decoder_sparse_step` skips (those keep a dense SwiGLU of width intermediate_size)."""

    @classmethod
    def moe(cls, hf) -> MoE:
        return MoE(n_experts=hf.num_experts, top_k=hf.num_experts_per_tok, d_expert=hf.moe_intermediate_size,
                   norm_topk=hf.norm_topk_prob)

    @classmethod
    def sparse(cls, hf, layer: int) -> bool:
        return layer not in hf.mlp_only_layers and hf.num_experts > 0 and (layer + 1) % hf.decoder_sparse_step == 0


class MixtralFamily(SparseFamily, LlamaFamily):
    """Mixtral = Llama (Mistral) with an MoE in every layer: softmax top-2 of 8, the two weights renormalised."""

    required = {**LlamaFamily.required, "sliding_window": (None,)}


class OlmoeFamily(SparseFamily, LlamaFamily):
    """OLMoE = Llama with full-width QK-norm and an MoE in every layer (softmax top-8 of 64, not renormalised)."""

    required = {**LlamaFamily.required, "clip_qkv": (None,)}
    extra_fields = {"qk_norm": "full"}
    layer_names = {
        **LlamaFamily.layer_names,
        "attention.sublayer.q_norm": "self_attn.q_norm",
        "attention.sublayer.k_norm": "self_attn.k_norm",
    }




def _split_rows(weight, groups: int, sizes: list[int]) -> list:
    """Rows of a fused projection stored group by group ([a, b, ...] per group) -> one matrix per part."""
    parts = weight.unflatten(0, (groups, sum(sizes))).split(sizes, dim=1)
    return [part.flatten(0, 1) for part in parts]


class HybridLinearFamily:
    """Shared by hybrids of linear-attention and full-attention layers: layers from `layer_types`, RMSNorm,
    SwiGLU, and a mixture of experts in the layers `uses_experts` picks (where the family's `moe` builds one)."""

    @classmethod
    def moe(cls, hf) -> MoE:
        moe = [i for i in range(hf.num_hidden_layers) if cls.uses_experts(hf, i)]
        raise ConversionError(f"{hf.model_type}: layers {moe} are mixture-of-experts layers, which llmfs does not "
                              "convert for this family yet; convert a config whose layers all use dense MLPs.")

    @classmethod
    def config(cls, hf) -> ModelConfig:
        _require(hf, "hidden_act", ("silu",))
        mlp = MLP(hf.intermediate_size, activation="silu", gated=True)
        experts = cls.moe(hf) if any(cls.uses_experts(hf, i) for i in range(hf.num_hidden_layers)) else None
        linear = LayerSpec(cls.linear_attention(hf), mlp)
        full = cls.full_attention_layer(hf, mlp)
        layers = tuple((linear if kind == "linear_attention" else full) for kind in hf.layer_types)
        layers = tuple(spec.replace(ffn=experts) if cls.uses_experts(hf, i) else spec for i, spec in enumerate(layers))
        return ModelConfig(vocab_size=hf.vocab_size, context_length=hf.max_position_embeddings,
                           d_model=hf.hidden_size, layers=layers, norm="rmsnorm", norm_eps=hf.rms_norm_eps,
                           tie_embeddings=hf.tie_word_embeddings, name=f"{hf.model_type} (from transformers)")

    mlp_names = {"ffn.sublayer.gate": "mlp.gate_proj", "ffn.sublayer.up": "mlp.up_proj",
                 "ffn.sublayer.down": "mlp.down_proj"}

    @classmethod
    def weights(cls, hf_state: dict, config: ModelConfig) -> dict:
        out = {
            "token_embedding.weight": hf_state["model.embed_tokens.weight"],
            "final_norm.weight": cls.norm_weight(hf_state["model.norm.weight"]),
            "lm_head.weight": hf_state.get("lm_head.weight", hf_state["model.embed_tokens.weight"]),
        }
        for i, spec in enumerate(config.layers):
            theirs = {key[len(f"model.layers.{i}."):]: t for key, t in hf_state.items()
                      if key.startswith(f"model.layers.{i}.")}
            ours = {"attention.norm.weight": cls.norm_weight(theirs["input_layernorm.weight"]),
                    "ffn.norm.weight": cls.norm_weight(theirs["post_attention_layernorm.weight"])}
            if isinstance(spec.ffn, MoE):
                moe = moe_weights_from_transformers(hf_state, f"model.layers.{i}.mlp.")
                ours.update({f"ffn.sublayer.{name}": t for name, t in moe.items()})
                if "mlp.gate.e_score_correction_bias" in theirs:  # DeepSeek V3's selection-only bias (Kimi Linear)
                    ours["ffn.sublayer.selection_bias"] = theirs["mlp.gate.e_score_correction_bias"]
                ours.update({f"ffn.sublayer.{a}.weight": theirs[f"mlp.{b}.weight"] for a, b in cls.shared_names.items()})
            else:
                ours.update({f"{a}.weight": theirs[f"{b}.weight"] for a, b in cls.mlp_names.items()})
            if isinstance(spec.attention, LinearAttention):
                ours.update({f"attention.sublayer.{k}": t for k, t in cls.linear_weights(theirs, spec.attention).items()})
            else:
                ours.update({f"attention.sublayer.{k}": t for k, t in cls.full_weights(theirs, spec.attention).items()})
            out.update({f"blocks.{i}.{name}": t for name, t in ours.items()})
        return out

    @staticmethod
    def norm_weight(weight):
        return weight


class Qwen3NextFamily(HybridLinearFamily):
    """Qwen3-Next: 3 Gated DeltaNet layers per full-attention layer; full attention has per-head QK-norm, RoPE on a
    quarter of each head and a sigmoid output gate (packed with the queries); RMSNorms scale by 1 + weight.
    MoE layers: softmax top-k (norm_topk_prob) plus one shared expert scaled by a sigmoid gate."""

    shared_names = {"shared.gate": "shared_expert.gate_proj", "shared.up": "shared_expert.up_proj",
                    "shared.down": "shared_expert.down_proj", "shared_gate": "shared_expert_gate"}

    @classmethod
    def moe(cls, hf) -> MoE:
        n_shared, rest = divmod(hf.shared_expert_intermediate_size, hf.moe_intermediate_size)
        if rest or n_shared < 1:
            raise ConversionError(f"{hf.model_type}: shared_expert_intermediate_size={hf.shared_expert_intermediate_size}"
                                  f" must be a positive multiple of moe_intermediate_size={hf.moe_intermediate_size}: "
                                  "llmfs's shared experts are n_shared experts of the routed experts' width.")
        return MoE(n_experts=hf.num_experts, top_k=hf.num_experts_per_tok, d_expert=hf.moe_intermediate_size,
                   n_shared=n_shared, norm_topk=hf.norm_topk_prob, shared_gate=True)

    @staticmethod
    def uses_experts(hf, i: int) -> bool:
        return i not in hf.mlp_only_layers and hf.num_experts > 0 and (i + 1) % hf.decoder_sparse_step == 0

    @staticmethod
    def linear_attention(hf) -> LinearAttention:
        return LinearAttention("gated_deltanet", n_heads=hf.linear_num_key_heads, n_v_heads=hf.linear_num_value_heads,
                               head_dim=hf.linear_key_head_dim, v_head_dim=hf.linear_value_head_dim,
                               conv_size=hf.linear_conv_kernel_dim, output_gate="silu")

    @staticmethod
    def full_attention_layer(hf, mlp) -> LayerSpec:
        rope = dict(hf.rope_parameters)
        fraction = rope.pop("partial_rotary_factor", 1.0)
        bias = bool(hf.attention_bias)
        attention = Attention(hf.num_attention_heads, hf.num_key_value_heads, hf.head_dim, qk_norm="per_head",
                              qkv_bias=bias, out_bias=bias, output_gate=True)
        return LayerSpec(attention, mlp, positions=Rope(rope.get("rope_theta", 10000.0),
                                                        _rope_scaling(hf.model_type, rope), fraction))

    @staticmethod
    def norm_weight(weight):
        return 1 + weight  # Qwen3-Next's RMSNorm multiplies by (1 + weight), initialised at 0

    @classmethod
    def full_weights(cls, theirs: dict, s: Attention) -> dict:
        out = {"k_norm.weight": cls.norm_weight(theirs["self_attn.k_norm.weight"]),
               "q_norm.weight": cls.norm_weight(theirs["self_attn.q_norm.weight"])}
        for suffix in ("weight", "bias"):
            if f"self_attn.q_proj.{suffix}" in theirs:  # per head: head_dim query rows, then head_dim gate rows
                out[f"q_proj.{suffix}"], out[f"gate_proj.{suffix}"] = _split_rows(
                    theirs[f"self_attn.q_proj.{suffix}"], s.n_heads, [s.head_dim, s.head_dim])
                for name in ("k_proj", "v_proj"):
                    out[f"{name}.{suffix}"] = theirs[f"self_attn.{name}.{suffix}"]
                out[f"out_proj.{suffix}"] = theirs[f"self_attn.o_proj.{suffix}"]
        return out

    @staticmethod
    def linear_weights(theirs: dict, s: LinearAttention) -> dict:
        group = s.n_v_heads // s.n_heads  # value heads per key head: stored key head by key head
        q, k, v, z = _split_rows(theirs["linear_attn.in_proj_qkvz.weight"], s.n_heads,
                                 [s.head_dim, s.head_dim, group * s.v_head_dim, group * s.v_head_dim])
        b, a = _split_rows(theirs["linear_attn.in_proj_ba.weight"], s.n_heads, [group, group])
        return {"q_proj.weight": q, "k_proj.weight": k, "v_proj.weight": v, "gate_proj.weight": z,
                "beta_proj.weight": b, "decay_proj.weight": a, "conv.weight": theirs["linear_attn.conv1d.weight"],
                "A_log": theirs["linear_attn.A_log"], "dt_bias": theirs["linear_attn.dt_bias"],
                "norm.weight": theirs["linear_attn.norm.weight"], "out_proj.weight": theirs["linear_attn.out_proj.weight"]}


class KimiLinearFamily(HybridLinearFamily):
    """Kimi Linear: Kimi Delta Attention (a decay per key channel, low-rank decay and output gates, a sigmoid gated
    norm) in 3 of every 4 layers, MLA without positions in the others; MoE layers with DeepSeek V3's router."""

    @staticmethod
    def uses_experts(hf, i: int) -> bool:
        return hf.mlp_layer_types[i] != "dense"

    shared_names = {"shared.gate": "shared_experts.gate_proj", "shared.up": "shared_experts.up_proj",
                    "shared.down": "shared_experts.down_proj"}

    @classmethod
    def moe(cls, hf) -> MoE:
        """DeepSeek V3's router: sigmoid scores, a selection-only bias, n_group groups, routed scaling; shared experts."""
        return MoE(n_experts=hf.num_local_experts, top_k=hf.num_experts_per_tok, d_expert=hf.moe_intermediate_size,
                   n_shared=hf.n_shared_experts or 0, router="sigmoid", norm_topk=hf.norm_topk_prob,
                   n_group=hf.n_group, topk_group=hf.topk_group, routed_scaling=hf.routed_scaling_factor)

    @staticmethod
    def linear_attention(hf) -> LinearAttention:
        return LinearAttention("kda", n_heads=hf.linear_num_heads, head_dim=hf.linear_head_dim,
                               conv_size=hf.linear_conv_kernel_dim, output_gate="sigmoid", low_rank=hf.linear_head_dim)

    @staticmethod
    def full_attention_layer(hf, mlp) -> LayerSpec:
        """MLA without positions (NoPE): the 'rotary' key part is shared across heads but never rotated."""
        return LayerSpec(MLA(n_heads=hf.num_attention_heads, kv_lora_rank=hf.kv_lora_rank, q_lora_rank=hf.q_lora_rank,
                             qk_nope_head_dim=hf.qk_nope_head_dim, qk_rope_head_dim=hf.qk_rope_head_dim,
                             v_head_dim=hf.v_head_dim), mlp, positions=None)

    mla_names = {"kv_down": "kv_a_proj_with_mqa", "kv_norm": "kv_a_layernorm", "kv_up": "kv_b_proj",
                 "out_proj": "o_proj", "q_down": "q_a_proj", "q_norm": "q_a_layernorm", "q_up": "q_b_proj"}

    @classmethod
    def full_weights(cls, theirs: dict, s: MLA) -> dict:
        names = dict(cls.mla_names, **({"q_up": "q_proj"} if s.q_lora_rank is None else {}))
        return {f"{ours}.weight": theirs[f"self_attn.{name}.weight"] for ours, name in names.items()
                if f"self_attn.{name}.weight" in theirs}

    @staticmethod
    def linear_weights(theirs: dict, s: LinearAttention) -> dict:
        names = {"q_proj": "q_proj", "k_proj": "k_proj", "v_proj": "v_proj", "out_proj": "o_proj",
                 "beta_proj": "b_proj", "decay_proj.0": "forget_gate.f_a_proj", "decay_proj.1": "forget_gate.f_b_proj",
                 "gate_proj.0": "g_a_proj", "gate_proj.1": "g_b_proj", "norm": "o_norm", "conv": "conv1d"}
        out = {f"{ours}.weight": theirs[f"self_attn.{name}.weight"] for ours, name in names.items()}
        out["A_log"] = theirs["self_attn.forget_gate.A_log"].flatten()  # (1, 1, heads, 1) -> (heads,)
        out["dt_bias"] = theirs["self_attn.forget_gate.dt_bias"]
        return out


LAYER_TYPES = ("sliding_attention", "full_attention")


def _layers_by_type(hf, uniform: ModelConfig) -> tuple:
    """One LayerSpec per entry of `hf.layer_types`: "sliding_attention" layers get `hf.sliding_window`, and each
    type its own RoPE base and scaling from `hf.rope_parameters[type]` (Gemma 3: 10k local, 1M global)."""
    types = list(getattr(hf, "layer_types", None) or ())
    if len(types) != hf.num_hidden_layers:
        raise ConversionError(f"{hf.model_type}: layer_types has {len(types)} entries but num_hidden_layers="
                              f"{hf.num_hidden_layers}.")
    layers = []
    for i, kind in enumerate(types):
        if kind not in LAYER_TYPES:
            raise ConversionError(f"{hf.model_type}: layer_types[{i}]={kind!r} is not supported; llmfs reproduces "
                                  f"{list(LAYER_TYPES)}.")
        rope = dict(hf.rope_parameters[kind])
        positions = Rope(base=rope["rope_theta"], scaling=_rope_scaling(hf.model_type, rope))
        window = hf.sliding_window if kind == "sliding_attention" else None
        spec = uniform.layers[0]
        layers.append(spec.replace(attention=dataclasses.replace(spec.attention, window=window), positions=positions))
    return tuple(layers)


class MistralFamily(LlamaFamily):
    """Mistral = Llama whose every layer attends to a sliding window of `sliding_window` tokens (None: none)."""

    @classmethod
    def config(cls, hf) -> ModelConfig:
        uniform = super().config(hf)
        if hf.sliding_window is None:
            return uniform
        return uniform.replace(layers=tuple(spec.replace(attention=dataclasses.replace(
            spec.attention, window=hf.sliding_window)) for spec in uniform.layers))


class Olmo3Family(Olmo2Family):
    """OLMo 3 = OLMo 2 with sliding-window layers (3 of every 4 by default); full layers may scale RoPE (YaRN)."""

    @classmethod
    def config(cls, hf) -> ModelConfig:
        uniform = super().config(hf)
        return uniform.replace(layers=_layers_by_type(hf, uniform))


class Gemma3Family(LlamaFamily):
    """Gemma 3 (text) = Llama with RMSNorm(1 + w) on both sides of each sublayer, GeGLU, per-head QK-norm,
    embeddings times √d_model, logits scaled by query_pre_attn_scalar ** -0.5, and local (sliding-window,
    RoPE 10k) layers interleaved with global ones (RoPE 1M); an optional final-logit soft-cap.
    """

    required = {"hidden_activation": ("gelu_pytorch_tanh",), "attn_logit_softcapping": (None,),
                "use_bidirectional_attention": (False, None)}
    extra_fields = {"norm": "offset_rmsnorm", "ffn": "geglu", "norm_placement": "sandwich", "qk_norm": "per_head",
                    "scale_embeddings": True}
    layer_names = {
        **LlamaFamily.layer_names,
        "attention.post_norm": "post_attention_layernorm",
        "ffn.norm": "pre_feedforward_layernorm",
        "ffn.post_norm": "post_feedforward_layernorm",
        "attention.sublayer.q_norm": "self_attn.q_norm",
        "attention.sublayer.k_norm": "self_attn.k_norm",
    }

    @classmethod
    def config_fields(cls, hf) -> dict:
        fields = {**super().config_fields(hf), "logit_softcap": hf.final_logit_softcapping}
        del fields["norm"], fields["ffn"]
        return fields

    @classmethod
    def config(cls, hf) -> ModelConfig:
        uniform = super().config(hf)
        scale = float(hf.query_pre_attn_scalar) ** -0.5
        layers = _layers_by_type(hf, uniform)
        return uniform.replace(layers=tuple(spec.replace(attention=dataclasses.replace(spec.attention, scale=scale))
                                            for spec in layers))


class GptOssFamily(SparseFamily, LlamaFamily):
    """gpt-oss = Llama with q/k/v/o biases, learned per-head sinks, sliding-window / full layers from `layer_types`,
    and an MoE in every layer: biased router, softmax over the top-k logits (= softmax over all, renormalised over
    the k: norm_topk), biased experts with the clamped SwiGLU
    (transformers stores gate and up interleaved, column by column)."""

    @classmethod
    def moe(cls, hf) -> MoE:
        return MoE(n_experts=hf.num_local_experts, top_k=hf.num_experts_per_tok, d_expert=hf.intermediate_size,
                   norm_topk=True, router_bias=True, expert_bias=True, swiglu_limit=hf.swiglu_limit,
                   swiglu_alpha=getattr(hf, "swiglu_alpha", 1.702))

    @classmethod
    def config(cls, hf) -> ModelConfig:
        uniform = super().config(hf)
        types = list(hf.layer_types)
        if len(types) != hf.num_hidden_layers or set(types) - set(LAYER_TYPES):
            raise ConversionError(f"{hf.model_type}: layer_types={types!r} must give one of {list(LAYER_TYPES)} "
                                  f"per layer ({hf.num_hidden_layers}).")
        return uniform.replace(layers=tuple(spec.replace(attention=dataclasses.replace(
            spec.attention, sinks=True, window=hf.sliding_window if kind == "sliding_attention" else None))
            for spec, kind in zip(uniform.layers, types)))

    @classmethod
    def weights(cls, hf_state: dict, config: ModelConfig) -> dict:
        out = LlamaFamily.weights.__func__(cls, hf_state, config)
        for i in range(config.n_layers):
            out[f"blocks.{i}.attention.sublayer.sinks"] = hf_state[f"model.layers.{i}.self_attn.sinks"]
            theirs, ours = f"model.layers.{i}.mlp.", f"blocks.{i}.ffn.sublayer."
            gate_up, gate_up_bias = hf_state[theirs + "experts.gate_up_proj"], hf_state[theirs + "experts.gate_up_proj_bias"]
            out.update({
                ours + "router.weight": hf_state[theirs + "router.weight"],
                ours + "router.bias": hf_state[theirs + "router.bias"],
                ours + "selection_bias": gate_up.new_zeros(gate_up.shape[0]),
                ours + "experts.w_in": torch.cat([gate_up[..., ::2], gate_up[..., 1::2]], -1),  # -> [gate | up]
                ours + "experts.b_in": torch.cat([gate_up_bias[..., ::2], gate_up_bias[..., 1::2]], -1),
                ours + "experts.w_out": hf_state[theirs + "experts.down_proj"],
                ours + "experts.b_out": hf_state[theirs + "experts.down_proj_bias"],
            })
        return out


FAMILIES = {"gpt2": Gpt2Family, "llama": LlamaFamily, "qwen3": Qwen3Family, "olmo2": Olmo2Family,
            "smollm3": SmolLM3Family, "deepseek_v3": DeepseekV3Family, "deepseek_v32": DeepseekV32Family,
            "qwen3_moe": Qwen3MoeFamily, "mixtral": MixtralFamily, "olmoe": OlmoeFamily,
            "qwen3_next": Qwen3NextFamily, "kimi_linear": KimiLinearFamily,
            "mistral": MistralFamily, "olmo3": Olmo3Family, "gemma3_text": Gemma3Family,
            "gpt_oss": GptOssFamily}


def _family(hf_config):
    model_type = getattr(hf_config, "model_type", None)
    if model_type not in FAMILIES:
        raise ConversionError(f"unsupported model family {model_type!r}; llmfs converts {sorted(FAMILIES)}.")
    return FAMILIES[model_type]


def config_from_transformers(hf_config) -> ModelConfig:
    """The llmfs config of a transformers config of any family in `FAMILIES`."""
    return _family(hf_config).config(hf_config)


def from_transformers(hf_model) -> Transformer:
    """An llmfs Transformer with the same config and weights as the transformers model `hf_model`."""
    family = _family(hf_model.config)
    config = family.config(hf_model.config)
    hf_state = hf_model.state_dict()
    weights = family.weights(hf_state, config)
    reference = next(iter(hf_state.values()))
    model = Transformer(config).to(device=reference.device, dtype=reference.dtype)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    if missing:
        raise ConversionError(f"{hf_model.config.model_type}: no transformers weight for {missing[:5]}.")
    for name, tensor in weights.items():
        if name not in expected:
            raise ConversionError(f"{hf_model.config.model_type}: llmfs has no tensor {name!r}.")
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise ConversionError(
                f"{hf_model.config.model_type}: tensor {name!r} has shape {tuple(tensor.shape)} in transformers "
                f"but {tuple(expected[name].shape)} in llmfs."
            )
    model.load_state_dict({name: t.detach().clone() for name, t in weights.items()})
    return model.eval()


def from_pretrained(name_or_path, **kwargs) -> Transformer:
    """Load a checkpoint with `transformers.AutoModelForCausalLM.from_pretrained(name_or_path, **kwargs)`
    (a hub name such as "Qwen/Qwen3-0.6B", or a local folder) and convert it with `from_transformers`."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"name_or_path must be a hub name or a folder path, got {type(name_or_path).__name__}.")
    from transformers import AutoModelForCausalLM

    return from_transformers(AutoModelForCausalLM.from_pretrained(name_or_path, **kwargs))
