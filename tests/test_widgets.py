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
