"""Chapter 9's trained MQAR scaffolding (`llmfs.mqar`) and the `gated-deltanet` benchmark's two outputs."""

import pytest
import torch

from llmfs import bench
from llmfs.attention import Attention
from llmfs.linear_attention import LinearAttention, LinearAttentionLayer
from llmfs.mqar import MIXERS, mixer_settings, recall_model, trained_recall
from llmfs.tasks import MQARTask


@pytest.mark.parametrize("kind", MIXERS)
def test_every_mixer_has_the_same_width_and_the_same_short_convolution(kind):
    model = recall_model(kind, vocab_size=20, d_model=16, n_heads=2, d_ff=32)
    assert model.config.d_model == 16 and model.conv.weight.shape == (16, 1, 2)
    mixer = model.lm.blocks[0].attention.sublayer
    assert isinstance(mixer, LinearAttentionLayer) == (kind != "softmax")
    if kind != "softmax":
        assert mixer.conv is None and mixer.settings.kind == kind  # the shared convolution is the only one
    logits = model(torch.randint(0, 20, (3, 11)))
    assert logits.shape == (3, 11, 20)


def test_the_model_is_causal_and_the_convolution_reaches_one_token_back():
    torch.manual_seed(0)
    model = recall_model("deltanet", vocab_size=20, d_model=16, n_heads=2, d_ff=32).eval()
    ids = torch.randint(0, 20, (1, 12))
    changed = ids.clone()
    changed[0, 7] = (ids[0, 7] + 1) % 20
    with torch.no_grad():
        before, after = model(ids), model(changed)
    torch.testing.assert_close(before[:, :7], after[:, :7])  # the past does not see the future
    assert (before[:, 7:] - after[:, 7:]).abs().amax(-1).min() > 0


def test_mixer_settings_and_bad_kinds():
    assert mixer_settings("softmax", 2, 8) == Attention(2, head_dim=8)
    assert mixer_settings("gated_deltanet", 2, 8) == LinearAttention("gated_deltanet", n_heads=2, head_dim=8,
                                                                     conv_size=None, chunk_size=64, output_gate=None)
    with pytest.raises(ValueError, match="kind must be one of 'linear', 'deltanet'"):
        mixer_settings("mamba", 2, 8)


def test_trained_recall_returns_one_accuracy_per_pair_count_and_seed_and_softmax_learns():
    """A few dozen steps: softmax attention after the short convolution already beats chance by far on 2 pairs."""
    result = trained_recall(["softmax", "linear"], n_pairs=[1, 2], seeds=[0, 1], steps=60, n_keys=4, n_values=4,
                            batch_size=32, lr=1e-2, eval_batch=64, d_model=16, n_heads=2, d_ff=32)
    assert set(result["accuracy"]) == {"softmax", "linear"} and result["chance"] == 0.25
    for acc in result["accuracy"].values():
        assert acc.shape == (2, 2) and bool(((acc >= 0) & (acc <= 1)).all())
    assert result["accuracy"]["softmax"].min() > 0.6
    assert all(seconds > 0 for seconds in result["seconds"].values())


def test_trained_recall_is_reproducible_for_a_seed():
    kwargs = dict(n_pairs=[2], seeds=[3], steps=5, n_keys=4, n_values=4, batch_size=8, eval_batch=16, d_model=16,
                  n_heads=2, d_ff=32)
    first, second = trained_recall(["deltanet"], **kwargs), trained_recall(["deltanet"], **kwargs)
    torch.testing.assert_close(first["accuracy"]["deltanet"], second["accuracy"]["deltanet"])


def test_gated_deltanet_benchmark_prints_the_crossover_and_returns_the_speedup_at_4096(monkeypatch, capsys):
    rows = [{"length": 512, "recurrent": 1.0, "chunked": 0.2, "sdpa": 0.1},
            {"length": 1024, "recurrent": 2.0, "chunked": 0.3, "sdpa": 0.4},
            {"length": 2048, "recurrent": 4.0, "chunked": 0.5, "sdpa": 1.5},
            {"length": 4096, "recurrent": 8.0, "chunked": 1.0, "sdpa": 6.0},
            {"length": 8192, "chunked": 2.0, "sdpa": 24.0}]
    monkeypatch.setattr(bench, "linear_attention_timings", lambda lengths, repeats: rows)
    assert bench.gated_deltanet(repeats=1) == ("speedup", 8.0)
    assert "overtakes SDPA from 1024 tokens" in capsys.readouterr().out
    monkeypatch.setattr(bench, "linear_attention_timings",
                        lambda lengths, repeats: [dict(row, sdpa=0.01) for row in rows])
    bench.gated_deltanet(repeats=1)
    assert "does not overtake SDPA up to 8192 tokens" in capsys.readouterr().out


def test_mqar_task_sizes_used_by_the_chapter_are_valid():
    for n in (2, 4, 8, 16):
        inputs, targets = MQARTask(n, n_keys=16, n_values=16).batch(2)
        assert inputs.shape[1] == 4 * n - 1


def test_plot_recall_draws_a_curve_and_band_per_kind_and_chance():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from llmfs.mqar import plot_recall

    fig, ax = plt.subplots()
    acc = {"linear": torch.tensor([[0.9, 0.8], [0.3, 0.2]]), "softmax": torch.ones(2, 2)}
    plot_recall(ax, [2, 4], acc, {"linear": "linear attention"}, chance=1 / 16, title="t")
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["linear attention", "softmax", "chance (1/16)"] and len(ax.collections) == 2
    assert list(ax.get_lines()[0].get_ydata()) == pytest.approx([0.85, 0.25])
    plt.close(fig)
