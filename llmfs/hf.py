"""Bridge to Hugging Face `transformers`: build an llmfs model with the same weights as a transformers
model, so every mechanism can be checked against the reference implementation.

Each family states its config mapping and its weight names; a family that differs from another only
a little (Qwen3 from Llama) subclasses it. `transformers` is needed only by the functions that take
its objects, never to import llmfs.
"""

import dataclasses

from .config import ModelConfig, RopeScaling
from .model import Transformer
from .positions import Rope


class ConversionError(ValueError):
    """A transformers model or config llmfs cannot reproduce exactly."""


def _require(hf_config, attribute: str, allowed) -> None:
    value = getattr(hf_config, attribute, None)
    if value not in allowed:
        raise ConversionError(
            f"{hf_config.model_type}: {attribute}={value!r} is not supported; "
            f"llmfs reproduces {sorted(map(str, allowed))}."
        )


def _rope_scaling(model_type: str, rope: dict) -> RopeScaling | None:
    """The llmfs RopeScaling of transformers' `rope_parameters` (chapter 8), or None for plain RoPE."""
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
        for key, allowed in (("mscale", (None,)), ("mscale_all_dim", (None,)), ("truncate", (None, True))):
            if rope.get(key) not in allowed:
                raise ConversionError(f"{model_type}: yarn {key}={rope[key]!r} is not supported; llmfs reproduces "
                                      f"{list(allowed)}.")
        if rope.get("factor") is None:
            raise ConversionError(f"{model_type}: yarn needs an explicit factor.")
        return RopeScaling("yarn", factor=rope["factor"], beta_fast=rope.get("beta_fast") or 32.0,
                           beta_slow=rope.get("beta_slow") or 1.0, attention_factor=rope.get("attention_factor"),
                           original_context_length=rope["original_max_position_embeddings"])
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


FAMILIES = {"gpt2": Gpt2Family, "llama": LlamaFamily, "qwen3": Qwen3Family, "olmo2": Olmo2Family,
            "smollm3": SmolLM3Family, "mistral": MistralFamily, "olmo3": Olmo3Family, "gemma3_text": Gemma3Family}


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
