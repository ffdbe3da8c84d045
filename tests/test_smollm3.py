"""SmolLM3 (NoPE in every 4th layer) against transformers: tiny random models (no downloads), same logits,
same cached decoding, same greedy tokens; the zoo's full-size config counted against transformers."""

import pytest
import torch
from parity import assert_cached_decoding_matches, assert_forward_matches, assert_greedy_generate_matches

from llmfs import count_parameters, zoo
from llmfs.hf import ConversionError, config_from_transformers

transformers = pytest.importorskip("transformers")
VOCAB = 300
YARN = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 16}
LINEAR = {"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}


def tiny_hf_smollm3(rope_parameters=None, **changes):
    """A tiny randomly initialised SmolLM3ForCausalLM: 5 layers (the 4th is NoPE), GQA, eager attention."""
    from transformers import SmolLM3Config, SmolLM3ForCausalLM

    torch.manual_seed(0)
    fields = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=5,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                  attn_implementation="eager", bos_token_id=0, eos_token_id=1, pad_token_id=1)
    if rope_parameters is not None:
        fields["rope_parameters"] = dict(rope_parameters)
    fields.update(changes)
    return SmolLM3ForCausalLM(SmolLM3Config(**fields)).eval()


VARIANTS = {
    "default": lambda: tiny_hf_smollm3(),
    "yarn": lambda: tiny_hf_smollm3(YARN),
    "linear": lambda: tiny_hf_smollm3(LINEAR),
    "custom-nope": lambda: tiny_hf_smollm3(no_rope_layers=[0, 1, 0, 1, 1]),
}


def test_no_rope_layers_become_per_layer_specs():
    config = config_from_transformers(tiny_hf_smollm3().config)
    assert [spec.positions is not None for spec in config.layers] == [True, True, True, False, True]
    assert (config.n_heads, config.n_kv_heads, config.ffn, config.norm) == (4, 2, "swiglu", "rmsnorm")
    custom = config_from_transformers(tiny_hf_smollm3(no_rope_layers=[0, 1, 0, 1, 1]).config)
    assert [spec.positions is not None for spec in custom.layers] == [False, True, False, True, True]
    yarn = config_from_transformers(tiny_hf_smollm3(YARN).config).rope_scaling
    assert (yarn.kind, yarn.factor, yarn.original_context_length) == ("yarn", 4.0, 16)


@pytest.mark.parametrize("variant", VARIANTS)
def test_full_forward_logits_match(variant):
    assert_forward_matches(VARIANTS[variant](), seq_len=48)


@pytest.mark.parametrize("variant", VARIANTS)
def test_prefill_and_cached_decoding_match(variant):
    assert_cached_decoding_matches(VARIANTS[variant](), prefill=20, total=28)


@pytest.mark.parametrize("variant", ["default", "yarn"])
def test_greedy_generate_matches_transformers(variant):
    assert_greedy_generate_matches(VARIANTS[variant]())


def test_zoo_config_counts_like_transformers_and_the_model_card():
    from transformers import SmolLM3Config, SmolLM3ForCausalLM

    published = SmolLM3Config(rope_parameters={"rope_type": "default", "rope_theta": 5000000.0},
                              max_position_embeddings=65536)
    with torch.device("meta"):
        hf_total = sum(p.numel() for p in SmolLM3ForCausalLM(published).parameters())
    config = zoo.get("smollm3-3b")
    total = count_parameters(config).total
    assert total == hf_total
    assert abs(total - zoo.PUBLISHED_PARAMETERS["smollm3-3b"]) <= 0.01 * zoo.PUBLISHED_PARAMETERS["smollm3-3b"]
    ours = {k: getattr(config, k) for k in ("d_model", "n_layers", "n_heads", "n_kv_heads", "d_ff", "vocab_size",
                                            "tie_embeddings", "rope_base", "context_length", "norm_eps")}
    assert ours == dict(d_model=published.hidden_size, n_layers=published.num_hidden_layers,
                        n_heads=published.num_attention_heads, n_kv_heads=published.num_key_value_heads,
                        d_ff=published.intermediate_size, vocab_size=published.vocab_size,
                        tie_embeddings=published.tie_word_embeddings, rope_base=5000000.0, context_length=65536,
                        norm_eps=published.rms_norm_eps)
    assert [spec.positions is not None for spec in config.layers] == [bool(f) for f in published.no_rope_layers]
    assert config_from_transformers(published).layers == config.layers


def test_zoo_tiny_keeps_a_nope_layer_at_any_depth():
    tiny = zoo.tiny("smollm3-3b")
    assert [spec.positions is not None for spec in tiny.layers] == [True, True, True, False]
    assert tiny.n_kv_heads < tiny.n_heads  # GQA stays GQA
    deeper = zoo.tiny("smollm3-3b", n_layers=9)
    assert [i for i, spec in enumerate(deeper.layers) if spec.positions is None] == [3, 7]


def test_sliding_windows_are_refused():
    from transformers import SmolLM3Config

    config = SmolLM3Config(num_hidden_layers=4, use_sliding_window=True, sliding_window=64)
    with pytest.raises(ConversionError, match="use_sliding_window=True is not supported"):
        config_from_transformers(config)


def test_dynamic_rope_is_refused():
    from transformers import SmolLM3Config

    config = SmolLM3Config(num_hidden_layers=4, rope_parameters={"rope_type": "dynamic", "rope_theta": 1e4,
                                                                 "factor": 2.0})
    with pytest.raises(ConversionError, match="rope_type='dynamic' is not supported"):
        config_from_transformers(config)
