"""Sliding-window families against transformers (Gemma 3 text, OLMo 3, Mistral): tiny random models whose windows
are shorter than the test sequences; full forward, cached decoding well past the window, greedy generation."""

import pytest
import torch
from parity import assert_cached_decoding_matches, assert_forward_matches, assert_greedy_generate_matches

from llmfs.hf import ConversionError, config_from_transformers

transformers = pytest.importorskip("transformers")
VOCAB, WINDOW = 300, 5
SMALL = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
             max_position_embeddings=128, attn_implementation="eager", bos_token_id=0, eos_token_id=1, pad_token_id=1)
TYPES = ["sliding_attention", "sliding_attention", "full_attention"]


def randomize_norms(model):
    """Random norm weights (and biases off zero), so a norm loaded into the wrong place shows."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(0.5 * torch.randn(p.shape) + (0 if model.config.model_type == "gemma3_text" else 1))
    return model.eval()


def tiny_gemma3(softcap=None):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(**SMALL, num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=24,
                              sliding_window=WINDOW, layer_types=TYPES, final_logit_softcapping=softcap,
                              rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                                               "full_attention": {"rope_type": "linear", "factor": 8.0,
                                                                  "rope_theta": 1e6}})
    return randomize_norms(Gemma3ForCausalLM(config))


def tiny_olmo3():
    from transformers import Olmo3Config, Olmo3ForCausalLM

    torch.manual_seed(0)
    config = Olmo3Config(**SMALL, num_key_value_heads=2, sliding_window=WINDOW, layer_types=TYPES, rms_norm_eps=1e-6,
                         rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 500000.0},
                                          "full_attention": {"rope_type": "yarn", "factor": 8.0, "rope_theta": 5e5,
                                                             "original_max_position_embeddings": 16,
                                                             "attention_factor": 1.2}})
    return randomize_norms(Olmo3ForCausalLM(config))


def tiny_mistral():
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(0)
    config = MistralConfig(**SMALL, num_key_value_heads=2, head_dim=24, sliding_window=WINDOW,
                           rope_parameters={"rope_type": "default", "rope_theta": 1e6})
    return randomize_norms(MistralForCausalLM(config))


MODELS = {"gemma3": tiny_gemma3, "gemma3-softcap": lambda: tiny_gemma3(softcap=3.0), "olmo3": tiny_olmo3,
          "mistral": tiny_mistral}


@pytest.mark.parametrize("name", MODELS)
def test_full_forward_logits_match(name):
    assert_forward_matches(MODELS[name]())


@pytest.mark.parametrize("name", MODELS)
def test_cached_decoding_well_past_the_window_matches(name):
    assert_cached_decoding_matches(MODELS[name](), prefill=3, total=32)


@pytest.mark.parametrize("name", MODELS)
def test_greedy_generate_matches_transformers(name):
    assert_greedy_generate_matches(MODELS[name]())


def test_gemma3_config_maps_its_mechanisms():
    config = config_from_transformers(tiny_gemma3(softcap=3.0).config)
    assert (config.norm, config.ffn, config.norm_placement, config.qk_norm) == (
        "offset_rmsnorm", "geglu", "sandwich", "per_head")
    assert config.scale_embeddings and config.logit_softcap == 3.0
    assert [spec.attention.window for spec in config.layers] == [WINDOW, WINDOW, None]
    assert [spec.positions.base for spec in config.layers] == [1e4, 1e4, 1e6]
    assert config.layers[2].positions.scaling.kind == "linear" and config.layers[0].positions.scaling is None
    assert config.layers[0].attention.scale == 24 ** -0.5


def test_mistral_without_a_window_is_plain_llama():
    from transformers import MistralConfig

    config = config_from_transformers(MistralConfig(**SMALL, num_key_value_heads=2, sliding_window=None))
    assert all(spec.attention.window is None for spec in config.layers)


def test_unknown_layer_types_are_refused_by_name():
    config = tiny_olmo3().config
    config.layer_types = ["sliding_attention", "chunked_attention", "full_attention"]
    with pytest.raises(ConversionError, match=r"layer_types\[1\]='chunked_attention' is not supported"):
        config_from_transformers(config)
    config.layer_types = ["full_attention"]
    with pytest.raises(ConversionError, match="layer_types has 1 entries but num_hidden_layers=3"):
        config_from_transformers(config)
