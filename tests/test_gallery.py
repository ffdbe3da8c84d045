"""The gallery: FLOPs per token against a hand count, features, parameter and cache rows from the zoo."""

import pytest
import torch

from llmfs import gallery, zoo
from llmfs.config import ModelConfig
from llmfs.counting import count_parameters


def small(**overrides):
    base = dict(vocab_size=32, context_length=64, d_model=16, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=24,
                ffn="swiglu", positions="rope", norm="rmsnorm", tie_embeddings=False)
    return ModelConfig(**(base | overrides))


def test_flops_per_token_matches_a_hand_count():
    # per layer: q 16x16, k 16x8, v 16x8, o 16x16 (2 K/V heads of 4) + SwiGLU 3 x 16x24; head 16x32
    weights = 2 * (256 + 128 + 128 + 256 + 3 * 16 * 24) + 16 * 32
    attention = 2 * 4 * 4 * 4 * 10  # 2 layers x (q.k + p.v = 4 FLOPs) x 4 heads x head_dim 4 x 10 keys
    assert gallery.flops_per_token(small(), 10) == 2 * weights + attention
    windowed = 2 * 4 * 4 * 4 * 3  # a window of 3 sees 3 keys, however long the sequence
    assert gallery.flops_per_token(small(window=3), 10) == 2 * weights + windowed
    assert gallery.flops_per_token(small(tie_embeddings=True), 10) == 2 * weights + attention  # head still a matmul


def test_flops_per_token_counts_only_routed_experts():
    config = zoo.get("qwen3-30b-a3b")
    count = count_parameters(config)
    flops = gallery.flops_per_token(config, 1)
    assert 2 * (count.active - count.embedding) < flops < 2 * count.active + 1e6  # about 2 x active, not total
    assert flops < 0.2 * 2 * count.total


def test_flops_per_token_rejects_bad_input():
    with pytest.raises(ValueError, match="seq_len"):
        gallery.flops_per_token(small(), 0)
    with pytest.raises(TypeError, match="ModelConfig"):
        gallery.flops_per_token("llama3-8b", 10)


def test_features_tell_models_apart():
    gpt2, llama, gemma = (gallery.features(zoo.get(n)) for n in ("gpt2-124m", "llama3-8b", "gemma3-27b"))
    assert gpt2["positions"] == "learned" and llama["positions"] == "RoPE"
    assert llama["attention"] == "GQA 32/8" and gpt2["attention"] == "MHA 12/12"
    assert gemma["window"].startswith("52/62 layers") and llama["window"] == "-"
    assert "256 experts, top-8, 1 shared" in gallery.features(zoo.get("deepseek-v3"))["MoE"]
    assert gallery.features(zoo.get("qwen3-next-80b-a3b"))["window"] == "36/48 linear"


def test_parameter_rows_compare_with_published_figures():
    rows = {row["model"]: row for row in gallery.parameter_rows()}
    assert set(rows) == set(zoo.names())
    row = rows["llama3-8b"]
    assert row["total"] == count_parameters(zoo.get("llama3-8b")).total
    assert row["diff %"] == pytest.approx(100 * (row["total"] - 8_030_000_000) / 8_030_000_000)
    assert rows["deepseek-v3"]["active diff %"] is not None
    # gpt-oss quotes active parameters without its embedding table: compared like with like, they agree
    oss = rows["gpt-oss-120b"]
    assert oss["active as published"] < oss["active"] and abs(oss["active diff %"]) < 1


def test_cache_rows_hold_windows_as_they_are():
    rows = {row["model"]: row for row in gallery.cache_rows(["llama3-8b", "gemma3-27b"])}
    llama = rows["llama3-8b"]
    assert llama[131_072] == 4 * llama[32_768]  # full attention grows linearly
    assert rows["gemma3-27b"][131_072] < 4 * rows["gemma3-27b"][32_768]  # windowed layers stop growing
    assert llama["per token"] == 2 * 32 * 8 * 128 * 2  # K and V, 32 layers, 8 heads of 128, bf16


def test_model_card_and_adopters():
    card = gallery.model_card("deepseek-v3")
    assert "MLA" in card and "B active" in card
    with pytest.raises(KeyError, match="unknown zoo model"):
        gallery.model_card("gpt-5")
    assert "deepseek-v3" in gallery.adopters("MLA") and "gpt2-124m" not in gallery.adopters("RoPE")
    assert {entry["mechanism"] for entry in gallery.TIMELINE} <= {
        "learned positions, post-norm", "pre-norm", "MQA", "SwiGLU", "RoPE", "sparse MoE (top-k)", "GQA",
        "sliding window", "MLA", "QK-norm"}
    with pytest.raises(KeyError, match="unknown mechanism"):
        gallery.adopters("magic")


def test_mixtral_count_matches_transformers():
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.MixtralConfig(vocab_size=32000, hidden_size=4096, intermediate_size=14336,
                                           num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                                           num_local_experts=8, num_experts_per_tok=2, tie_word_embeddings=False)
    with torch.device("meta"):
        reference = transformers.MixtralForCausalLM(hf_config)
    count = count_parameters(zoo.get("mixtral-8x7b"))
    assert count.total == sum(p.numel() for p in reference.parameters())
    assert abs(count.total - 46_700_000_000) / 46_700_000_000 < 0.005


def test_diff_against_the_baseline():
    assert gallery.baseline_of("gpt2-124m") is None and gallery.baseline_of("llama3-8b") == "gpt2-124m"
    assert gallery.baseline_of("qwen3-32b") == "llama3-8b" and gallery.baseline_of("gpt2-xl") == "gpt2-124m"
    with pytest.raises(KeyError, match="unknown zoo model"):
        gallery.baseline_of("gpt-5")
    llama, gpt2 = zoo.get("llama3-8b"), zoo.get("gpt2-124m")
    changed = gallery.diff(llama, gpt2)
    assert changed["positions"] == ("learned", "RoPE") and changed["attention"] == ("MHA 12/12", "GQA 32/8")
    assert "qk-norm" not in changed  # neither has one
    assert gallery.diff(llama, llama) == {}
    qwen = gallery.diff(zoo.get("qwen3-32b"), llama)
    assert set(qwen) == {"qk-norm", "attention", "vocab", "layers x width"}
    assert "apart from: llama3-8b: qk-norm per_head; attention GQA 64/8; vocab 151,936" in gallery.model_card("qwen3-32b")


def test_flops_rows_equal_flops_per_token():
    rows = gallery.flops_rows(["llama3-8b", "gemma3-27b"], lengths=(1, 4096))
    for row in rows:
        config = zoo.get(row["model"])
        assert row[1] == gallery.flops_per_token(config, 1) and row[4096] == gallery.flops_per_token(config, 4096)
    with pytest.raises(ValueError, match="seq_len"):
        gallery.flops_rows(["llama3-8b"], lengths=(0,))
