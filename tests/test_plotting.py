"""The shared plots return a Figure, draw what they were given, and refuse shapes that do not fit."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from llmfs.plotting import plot_attention, plot_losses  # noqa: E402
from llmfs.training import History  # noqa: E402


def causal_weights(n):
    scores = torch.randn(n, n).masked_fill(~torch.tril(torch.ones(n, n, dtype=torch.bool)), float("-inf"))
    return scores.softmax(dim=-1)  # (n, n), zero above the diagonal


def history(offset=0.0):
    return History(
        steps=[10, 20, 30], train_loss=[3.0 + offset, 2.0, 1.5], val_loss=[3.1, 2.4, 2.3], tokens_seen=[80, 160, 240]
    )


# --- attention ---


def test_plot_attention_returns_figure_with_labels():
    tokens = ["The", "cat", "sat", "down"]
    figure = plot_attention(causal_weights(4), tokens, title="head 0")
    assert isinstance(figure, Figure)
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == tokens
    assert [t.get_text() for t in ax.get_yticklabels()] == tokens  # square: y labels default to x labels
    assert ax.get_title() == "head 0"
    figure.canvas.draw()


def test_plot_attention_is_not_registered_with_pyplot():
    before = plt.get_fignums()
    plot_attention(np.eye(3))
    assert plt.get_fignums() == before


def test_plot_attention_marks_masked_cells():
    weights = causal_weights(3)
    image = plot_attention(weights, masked=weights == 0).axes[0].images[0]
    assert image.get_array().mask.tolist() == [[False, True, True], [False, False, True], [False, False, False]]
    scores = torch.tensor([[0.5, float("-inf")], [0.1, 0.2]])  # raw scores: -inf counts as masked
    image = plot_attention(scores).axes[0].images[0]
    assert image.get_array().mask.tolist() == [[False, True], [False, False]]


def test_plot_attention_rectangular_with_annotations_and_given_axes():
    figure = Figure()
    ax = figure.add_subplot()
    returned = plot_attention(np.full((2, 5), 0.2), x_labels=list("abcde"), y_labels=["q1", "q2"], ax=ax, annotate=True)
    assert returned is figure
    assert len(ax.texts) == 10


@pytest.mark.parametrize(
    "weights, kwargs, match",
    [
        (np.ones(4), {}, "2-D"),
        (np.ones((2, 3, 3)), {}, "2-D"),
        (np.ones((3, 3)), {"x_labels": ["a", "b"]}, "x_labels has 2 labels"),
        (np.ones((2, 3)), {"x_labels": ["a", "b", "c"], "y_labels": ["a"]}, "y_labels has 1 labels"),
        (np.ones((3, 3)), {"masked": np.zeros((2, 2), dtype=bool)}, "masked must be a boolean"),
        (np.ones((3, 3)), {"masked": np.zeros((3, 3))}, "masked must be a boolean"),
    ],
)
def test_plot_attention_rejects_bad_shapes(weights, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot_attention(weights, **kwargs)


# --- losses ---


def test_plot_losses_one_history():
    figure = plot_losses(history(), title="run")
    assert isinstance(figure, Figure)
    ax = figure.axes[0]
    train_line, val_line = ax.get_lines()
    assert train_line.get_linestyle() == "--" and val_line.get_linestyle() == "-"
    assert list(train_line.get_xdata()) == [10, 20, 30]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "val"]
    assert ax.get_xlabel() == "step" and ax.get_title() == "run"


def test_plot_losses_several_runs_tokens_and_log_scale():
    no_val = History(steps=[5], train_loss=[2.0], tokens_seen=[40])
    figure = plot_losses({"small": history(), "big": history(0.5), "no val": no_val}, x="tokens", log_scale=True)
    ax = figure.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["small train", "small val", "big train", "big val", "no val train"]
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "tokens seen"
    small_train, small_val, big_train = ax.get_lines()[:3]
    assert small_train.get_color() == small_val.get_color() != big_train.get_color()
    assert list(small_train.get_xdata()) == [80, 160, 240]
    figure.canvas.draw()


@pytest.mark.parametrize(
    "histories, kwargs, error, match",
    [
        ({}, {}, TypeError, "non-empty dict"),
        ([1.0, 2.0], {}, TypeError, "History"),
        ({"a": [1.0]}, {}, TypeError, r"histories\['a'\]"),
        (History(), {"x": "epoch"}, ValueError, "x must be one of"),
    ],
)
def test_plot_losses_rejects_bad_input(histories, kwargs, error, match):
    with pytest.raises(error, match=match):
        plot_losses(histories, **kwargs)


def test_design_diagram_names_the_pieces_it_connects():
    from llmfs.plotting import draw_design

    figure = draw_design()
    texts = " ".join(t.get_text() for t in figure.axes[0].texts)
    for piece in ("ModelConfig", "LayerSpec", "Transformer(config)", "Block i", "model.new_cache(B)",
                  "kv_cache_bytes", "count_parameters", "layer_pattern"):
        assert piece in texts
    assert figure.get_size_inches()[0] <= 8  # readable at the book's column width
    figure.canvas.draw()


def test_plot_seed_bands_draws_a_band_per_name_and_baselines():
    from llmfs.plotting import plot_seed_bands

    def history(shift):
        h = History()
        for step in (0, 10, 20):
            h.steps.append(step)
            h.tokens_seen.append(step * 8)
            h.train_loss.append(3.0 - step / 20 + shift)
            h.val_loss.append(3.1 - step / 20 + shift)
        return h

    figure = plot_seed_bands({"a": [history(0), history(0.1)], "b": [history(0.2)]}, baselines={"unigram": 2.5})
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a (2 seeds)", "b (1 seeds)", "unigram"]
    assert len(ax.collections) == 2  # one band per name
    with pytest.raises(TypeError):
        plot_seed_bands({"a": []})


def test_draw_sharing_connects_each_query_head_to_its_group():
    from llmfs.plotting import draw_sharing

    figure = draw_sharing(8, 2, title="GQA")
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert texts == [f"q{h}" for h in range(8)] + ["kv0", "kv1"]
    with pytest.raises(ValueError, match="multiple"):
        draw_sharing(8, 3)
# --- chapter 7: placements and sweeps ---


def test_draw_placements_draws_one_panel_per_placement_and_refuses_unknown_names():
    from llmfs.plotting import draw_placements

    figure = draw_placements()
    assert isinstance(figure, Figure) and len(figure.axes) == 4
    assert len(draw_placements(("pre",)).axes) == 1
    with pytest.raises(ValueError, match="placements"):
        draw_placements(("pre", "middle"))


def test_plot_sweep_draws_means_bands_and_references():
    from llmfs.plotting import plot_sweep

    values = np.array([[3.0, 3.2], [2.0, 2.4], [4.0, 4.0]])  # 3 learning rates, 2 seeds
    figure = plot_sweep({"a": values}, [1e-3, 1e-2, 1e-1], references={"chance": 4.4})
    ax = figure.axes[0]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [3.1, 2.2, 4.0])
    assert ax.get_xscale() == "log" and len(ax.collections) == 1
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "chance"]
    with pytest.raises(ValueError, match="shape"):
        plot_sweep({"a": values[:2]}, [1e-3, 1e-2, 1e-1])
    with pytest.raises(TypeError):
        plot_sweep({}, [1])


def test_draw_rope_rotation_gives_equal_dot_products_for_equal_offsets():
    from llmfs.plotting import draw_rope_rotation

    figure = draw_rope_rotation(pairs=((1, 3), (5, 7), (0, 4)))
    titles = [ax.get_title().split("= ")[-1] for ax in figure.axes]
    assert titles[0] == titles[1] != titles[2]  # offset 2 twice, then offset 4


# --- several seeds: per-step curves and final values (chapter 3) ---


def test_plot_step_bands_averages_windows_and_draws_a_band_per_name():
    from llmfs.plotting import plot_step_bands

    curves = {"a": [[3.0] * 10 + [1.0] * 10, [3.0] * 10 + [2.0] * 10], "b": [list(range(20))]}
    ax = plot_step_bands(curves, baselines={"chance": 2.5}, window=10).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a (2 seeds)", "b (1 seeds)", "chance"]
    assert ax.lines[0].get_ydata().tolist() == [3.0, 1.5]  # window means, then the mean over seeds
    assert ax.lines[0].get_xdata().tolist() == [10, 20]
    assert len(ax.collections) == 2
    with pytest.raises(ValueError, match="equally long"):
        plot_step_bands({"a": [[1.0] * 20, [1.0] * 30]})
    with pytest.raises(ValueError, match="window"):
        plot_step_bands(curves, window=0)


def test_plot_seed_points_draws_each_seed_and_the_mean():
    from llmfs.plotting import plot_seed_points

    ax = plot_seed_points({"MHA": [0.2, 0.3], "MQA": [0.1]}, baselines={"chance": 0.05}).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["MHA", "MQA"]
    assert ax.collections[0].get_offsets()[:, 1].tolist() == [0.2, 0.3]
    assert ax.lines[0].get_ydata().tolist() == pytest.approx([0.25, 0.25])
    with pytest.raises(ValueError, match="finite"):
        plot_seed_points({"MHA": [float("nan")]})
