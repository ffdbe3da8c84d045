"""The explorers' callbacks, driven without a browser; `import llmfs` does not import ipywidgets."""

import subprocess
import sys

import pytest
import torch

from llmfs import widgets, zoo
from llmfs.counting import count_parameters, kv_cache_bytes


def test_import_llmfs_does_not_import_ipywidgets():
    code = "import sys, llmfs, llmfs.widgets; assert 'ipywidgets' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_memory_table_matches_counts():
    rows = widgets.memory_table(["llama3-8b", "gemma3-27b"], 32_768, batch=2, dtype="float32")
    config = zoo.get("llama3-8b")
    assert rows[0]["weights GiB"] == count_parameters(config).total * 4 / 2**30
    assert rows[0]["cache GiB"] == kv_cache_bytes(config, 32_768, 2, dtype=torch.float32) / 2**30
    half = widgets.memory_table("llama3-8b", 32_768, batch=2, dtype="bfloat16")[0]
    assert half["cache GiB"] == pytest.approx(rows[0]["cache GiB"] / 2)


@pytest.mark.parametrize("args, error, match", [
    ((["gpt-5"], 1024), KeyError, "unknown zoo model"),
    ((["llama3-8b"], 0), ValueError, "context"),
    ((["llama3-8b"], 1024, 1, "int3"), ValueError, "unsupported dtype"),
    (([], 1024), ValueError, "at least one"),
])
def test_memory_table_rejects_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        widgets.memory_table(*args)


def test_attention_patterns():
    causal = widgets.attention_pattern("causal", 16)
    assert torch.equal(causal, torch.ones(16, 16, dtype=torch.bool).tril())
    window = widgets.attention_pattern("window", 16, window=4)
    assert window.sum(-1).max() == 4 and window[15, 12] and not window[15, 11]
    sinks = widgets.attention_pattern("sinks", 16, window=4, sinks=2)
    assert sinks[15, 0] and sinks[15, 1] and not sinks[15, 2]
    chunked = widgets.attention_pattern("chunked", 16, chunk=4)
    assert chunked[7, 4] and not chunked[7, 3]
    sparse = widgets.attention_pattern("sparse_topk", 16, top_k=3)
    assert (sparse.sum(-1) == torch.arange(1, 17).clamp(max=3)).all() and sparse.diagonal().all()
    assert not (sparse & ~causal).any()
    reach = widgets.receptive_field(window, 3)  # 3 layers of a 4-window reach 3 * 3 + 1 tokens back
    assert reach[15, 6] and not reach[15, 5]
    with pytest.raises(ValueError, match="unknown attention pattern"):
        widgets.attention_pattern("global", 16)
    with pytest.raises(ValueError, match="seq_len"):
        widgets.attention_pattern("causal", 0)


def test_rope_curves():
    curves = widgets.rope_curves(kind="linear", factor=4.0)
    torch.testing.assert_close(curves["scaled"], curves["original"] / 4)
    llama = widgets.rope_curves(kind="llama3", factor=8.0)
    assert llama["scaled"][0] == llama["original"][0]  # fast pairs kept
    assert llama["scaled"][-1] == pytest.approx(llama["original"][-1] / 8)  # slow pairs interpolated
    with pytest.raises(ValueError, match="unknown RoPE scaling"):
        widgets.rope_curves(kind="magic")


def test_explorers_build_and_update(capsys):
    pytest.importorskip("ipywidgets")
    import matplotlib

    matplotlib.use("Agg")
    memory = widgets.memory_explorer()
    memory.children[1].value = 65_536  # the context slider drives the callback
    printed = capsys.readouterr().out  # without a kernel, Output widgets print through
    assert "cache     8.00 GiB" in printed and "cache     4.00 GiB" in printed  # llama3-8b at 64k, then 32k
    for build in (widgets.attention_explorer, widgets.rope_explorer):
        box = build()
        box.children[0].value = box.children[0].options[-1]


def test_moe_routing_uses_the_real_routers():
    from llmfs.moe import MixtureOfExperts

    plain = widgets.moe_routing("softmax", n_tokens=32, n_experts=8, top_k=2, seed=1)
    renorm = widgets.moe_routing("softmax_renorm", n_tokens=32, n_experts=8, top_k=2, seed=1)
    # softmax top-k: the k largest probabilities, left as they are (they sum to less than 1)
    top = plain["scores"].topk(2, dim=-1)
    assert torch.equal(plain["experts"], top.indices)
    torch.testing.assert_close(plain["weights"], top.values)
    assert (plain["weights"].sum(-1) < 1).all()
    # renormalising changes the weights, not the choices
    assert torch.equal(renorm["experts"], plain["experts"])
    torch.testing.assert_close(renorm["weights"], top.values / top.values.sum(-1, keepdim=True))
    # DeepSeek: sigmoid scores, experts only from the best 2 of 4 groups, weights the normalised chosen scores
    deep = widgets.moe_routing("deepseek", n_tokens=32, n_experts=8, top_k=2, seed=1)
    assert ((deep["scores"] > 0) & (deep["scores"] < 1)).all()
    assert max(len(set((row // 2).tolist())) for row in deep["experts"]) <= 2
    chosen = deep["scores"].gather(1, deep["experts"])
    torch.testing.assert_close(deep["weights"], chosen / chosen.sum(-1, keepdim=True))
    assert MixtureOfExperts.route.__module__ == "llmfs.moe"  # routing is llmfs.moe's, not re-implemented


@pytest.mark.parametrize("router", ["softmax_renorm", "deepseek"])
@pytest.mark.parametrize("balancing", ["aux_loss", "bias_update"])
def test_moe_balancing_evens_the_load(router, balancing):
    for seed in range(3):
        result = widgets.moe_routing(router, balancing, steps=20, seed=seed)
        assert result["load"].shape == (21, 8)
        assert (result["load"].sum(-1) == 64 * 2).all()  # nothing dropped without a capacity
        before, after = result["imbalance"][0], result["imbalance"][-1]
        assert after < before - 0.2, (seed, before, after)
    if balancing == "bias_update":
        assert result["selection_bias"].abs().sum() > 0
        chosen = result["scores"].gather(1, result["experts"])  # the bias chose; the scores still weigh
        torch.testing.assert_close(result["weights"], chosen / chosen.sum(-1, keepdim=True))


def test_moe_capacity_drops_what_does_not_fit():
    result = widgets.moe_routing("softmax_renorm", "capacity", n_tokens=64, top_k=2, capacity_factor=1.0, seed=0)
    assert result["capacity"] == 16  # ceil(1.0 * 64 * 2 / 8)
    offered, kept = result["load"]
    assert offered.sum() == 128 and offered.max() > 16  # the uncapped router overloads some experts
    assert kept.max() <= 16 and kept.sum() == 128 - result["dropped"] > 0
    assert torch.equal(kept, offered.clamp(max=16))  # each expert keeps its first `capacity` assignments
    roomy = widgets.moe_routing("softmax_renorm", "capacity", capacity_factor=8.0, seed=0)
    assert roomy["dropped"] == 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(router="switch"), "unknown router"),
    (dict(balancing="magic"), "unknown balancing"),
    (dict(top_k=9, n_experts=8), "top_k=9 must be at most n_experts=8"),
    (dict(n_tokens=0), "n_tokens"),
    (dict(n_experts=True), "n_experts"),
    (dict(capacity_factor=float("nan")), "capacity_factor"),
    (dict(capacity_factor=0), "capacity_factor"),
    (dict(skew=-1.0), "skew"),
    (dict(rate="fast"), "rate"),
    (dict(router="deepseek", n_experts=6, n_group=4), "n_group=4 must divide n_experts=6"),
])
def test_moe_routing_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        widgets.moe_routing(**kwargs)


def test_moe_explorer_builds_and_updates(capsys):
    pytest.importorskip("ipywidgets")
    import matplotlib

    matplotlib.use("Agg")
    box = widgets.moe_explorer()
    router, balancing, n_experts, top_k = box.children[:4]
    balancing.value = "capacity"
    router.value = "deepseek"
    top_k.value = 8
    n_experts.value = 4  # top-k 8 of 4 experts: the callback says why instead of drawing
    assert "top_k=8 must be at most n_experts=4" in capsys.readouterr().out
    ax = widgets.draw_moe_routing(widgets.moe_routing("softmax", "capacity"))[1]
    assert [line.get_ydata()[0] for line in ax.get_lines()] == [16.0, 20.0]  # even share, capacity


def test_draw_moe_balancing_shows_every_run_and_its_baselines():
    import matplotlib

    matplotlib.use("Agg")
    runs = {"aux_loss": [widgets.moe_routing("deepseek", "aux_loss", steps=3, seed=s) for s in (0, 1)]}
    capped = widgets.moe_routing("softmax", "capacity", capacity_factor=1.0)
    curve_ax, cap_ax = widgets.draw_moe_balancing(runs, capped)
    lines = curve_ax.get_lines()
    assert len(lines) == 2 + 2  # one per seed, no balancing, even
    assert lines[2].get_ydata()[0] == pytest.approx(sum(r["imbalance"][0] for r in runs["aux_loss"]) / 2)
    assert [line.get_ydata()[0] for line in cap_ax.get_lines()] == [capped["capacity"], capped["mean_load"]]
    assert f"{capped['dropped']} of 128" in cap_ax.get_title()
