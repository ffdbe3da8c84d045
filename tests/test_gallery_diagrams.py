"""Block diagrams drawn from zoo configs: every config draws, and the drawn labels are read from the config."""

import dataclasses

import matplotlib
import pytest

from llmfs import gallery, zoo
from llmfs.moe import MoE

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def drawn_text(ax) -> str:
    return "\n".join(text.get_text() for text in ax.texts)


@pytest.mark.parametrize("name", zoo.names())
def test_every_zoo_config_draws_with_its_labels(name):
    config = zoo.get(name)
    labels = gallery.diagram_labels(config)
    assert sum(block["count"] for block in labels["blocks"]) == config.n_layers
    assert sorted(layer for block in labels["blocks"] for layer in block["layers"]) == list(range(1, config.n_layers + 1))
    fig, ax = plt.subplots(figsize=(2.5, 4.5))
    gallery.draw_block_diagram(config, ax)
    text = drawn_text(ax)
    for line in labels["embedding"] + labels["head"] + [f"{b['count']} × layer" for b in labels["blocks"]]:
        assert line in text
    for block in labels["blocks"]:
        assert all(line in text for line in block["lines"])
    strip = [p for p in ax.patches if type(p).__name__ == "Rectangle"]
    assert len(strip) == config.n_layers  # one cell per layer
    plt.close(fig)


def test_labels_come_from_the_config():
    gemma = gallery.diagram_labels(zoo.get("gemma3-27b"))
    local, glob = gemma["blocks"]
    assert (local["count"], glob["count"]) == (52, 10) and glob["layers"][:2] == [6, 12]
    assert "window 1024, per-head QK-norm" in local["lines"] and "RoPE θ=10000" in local["lines"]
    assert "RoPE θ=1e+06, linear×8" in glob["lines"] and "RMSNorm(1+w), sandwich norm" in glob["lines"]
    assert gemma["embedding"] == ["embedding 262,208 × 5,376", "× √d_model"] and gemma["head"] == [
        "final RMSNorm(1+w), head tied"]
    deepseek = gallery.diagram_labels(zoo.get("deepseek-v3"))["blocks"]
    assert [b["count"] for b in deepseek] == [3, 58]
    assert "MoE 256×2048, top-8 +1 shared" in deepseek[1]["lines"] and "SwiGLU 18432" in deepseek[0]["lines"]
    gpt2 = gallery.diagram_labels(zoo.get("gpt2-124m"))
    assert gpt2["embedding"][1] == "+ learned positions" and "MHA 12/12 × 64" in gpt2["blocks"][0]["lines"]
    # change the config, and the diagram changes with it
    llama = zoo.get("llama3-8b")
    moe = MoE(n_experts=16, top_k=2, d_expert=1024, n_shared=2)
    changed = llama.replace(layers=tuple(spec.replace(
        ffn=moe, attention=dataclasses.replace(spec.attention, n_kv_heads=4, window=512)) for spec in llama.layers))
    lines = gallery.diagram_labels(changed)["blocks"][0]["lines"]
    assert lines[:2] == ["GQA 32/4 × 128", "window 512"] and "MoE 16×1024, top-2 +2 shared" in lines
    assert "SwiGLU 14336" in gallery.diagram_labels(llama)["blocks"][0]["lines"]


def test_block_diagrams_side_by_side_and_bad_input():
    fig = gallery.block_diagrams(["llama3-8b", "gemma3-27b", "deepseek-v3"])
    assert fig.get_figwidth() <= 8 and len(fig.axes) == 3
    assert "gemma3-27b" in drawn_text(fig.axes[1])
    plt.close(fig)
    with pytest.raises(KeyError, match="unknown zoo model"):
        gallery.block_diagrams(["gpt-5"])
    with pytest.raises(ValueError, match="width"):
        gallery.block_diagrams(["llama3-8b"], width=12)
    with pytest.raises(ValueError, match="at least one"):
        gallery.block_diagrams([])
    with pytest.raises(TypeError, match="ModelConfig"):
        gallery.diagram_labels("llama3-8b")
