"""Chapter 5's experiment helpers: passkey models, attention weights read back, windows swapped on trained weights."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from llmfs import Transformer  # noqa: E402
from llmfs.exercises.ch05 import visible_tokens  # noqa: E402
from llmfs.plotting import plot_receptive_field  # noqa: E402
from llmfs.probes import attention_weights  # noqa: E402
from llmfs.streaming import (  # noqa: E402
    decode_step_seconds, loss_by_position, passkey_accuracy, passkey_config, receptive_field,
    train_on_task, train_passkey, with_window,
)
from llmfs.tasks import PasskeyTask  # noqa: E402

TASK = PasskeyTask(n_keys=4, n_filler=8, length=24)


def test_passkey_config_lays_local_and_global_layers():
    config = passkey_config(TASK, "LLG", window=5)
    assert [spec.attention.window for spec in config.layers] == [5, 5, None]
    assert config.vocab_size == TASK.vocab_size and config.context_length == TASK.length
    assert all(spec.attention.sinks for spec in passkey_config(TASK, "LG", 5, sinks=True).layers)


@pytest.mark.parametrize("pattern", ["", "LX", None, "lg"])
def test_passkey_config_refuses_unknown_layer_kinds(pattern):
    with pytest.raises(ValueError, match="pattern"):
        passkey_config(TASK, pattern, window=4)


def test_train_passkey_is_reproducible_and_learns_within_reach():
    config = passkey_config(TASK, "G", window=4, d_model=32)
    first = train_passkey(config, TASK, steps=3, seed=1, batch_size=8)
    again = train_passkey(config, TASK, steps=3, seed=1, batch_size=8)
    for a, b in zip(first.parameters(), again.parameters()):
        assert torch.equal(a, b)
    assert not first.training
    with pytest.raises(ValueError, match="steps"):
        train_passkey(config, TASK, steps=0, seed=0)


class Oracle(torch.nn.Module):
    """Answers with the token after the marker (or always `constant`)."""

    def __init__(self, constant=None):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.constant = constant

    def forward(self, ids):
        logits = torch.zeros(*ids.shape, TASK.vocab_size)
        if self.constant is None:
            key = ids[torch.arange(len(ids)), (ids == TASK.marker).float().argmax(1) + 1]
        else:
            key = torch.full((len(ids),), self.constant)
        logits[torch.arange(len(ids)), -1, key] = 1.0
        return logits


def test_passkey_accuracy_scores_the_last_position():
    distances = [2, 7, 20]
    assert torch.equal(passkey_accuracy(Oracle(), TASK, distances, n_sequences=32), torch.ones(3))
    guess = passkey_accuracy(Oracle(constant=TASK.n_filler + 2), TASK, distances, n_sequences=400)
    assert ((guess > 0.1) & (guess < 0.4)).all()  # one key of 4


@pytest.mark.parametrize("sinks", [False, True])
@pytest.mark.parametrize("window", [None, 3])
def test_attention_weights_rebuild_each_layers_output(window, sinks):
    torch.manual_seed(0)
    model = Transformer(passkey_config(TASK, "LG" if window else "GG", window or 4, sinks=sinks)).eval()
    if sinks:
        for block in model.blocks:
            torch.nn.init.normal_(block.attention.sublayer.sinks)
    ids, _ = TASK.batch(3)
    captured = []
    layer = model.blocks[0].attention.sublayer
    hook = layer.register_forward_hook(lambda m, args, kwargs, out: captured.append((args[0], out)), with_kwargs=True)
    weights = [attention_weights(model, ids, index) for index in range(len(model.blocks))]
    model(ids)
    hook.remove()
    x, out = captured[0]
    B, T, _ = x.shape
    v = layer.v_proj(x).view(B, T, layer.n_kv_heads, layer.head_dim).transpose(1, 2)
    v = v.repeat_interleave(layer.n_heads // layer.n_kv_heads, dim=1)
    rebuilt = layer.out_proj((weights[0] @ v).transpose(1, 2).reshape(B, T, -1))
    assert len(weights) == 2 and weights[0].shape == (3, 2, T, T)
    assert torch.allclose(rebuilt, out, atol=1e-5)
    sums = weights[0].sum(-1)
    assert (sums < 1 - 1e-4).all() if sinks else torch.allclose(sums, torch.ones_like(sums))
    if window:
        assert (weights[0][..., 5, :3] == 0).all()  # 5 - 2 = 3 keys back is outside a window of 3


def test_with_window_keeps_the_weights_and_changes_only_the_mask():
    torch.manual_seed(0)
    model = Transformer(passkey_config(TASK, "GG", 4)).eval()
    ids, _ = TASK.batch(2)
    with torch.no_grad():
        assert torch.allclose(with_window(model, TASK.length)(ids), model(ids), atol=1e-6)
        assert not torch.allclose(with_window(model, 4)(ids), model(ids), atol=1e-3)
        windowed, sinks = with_window(model, 4), with_window(model, 4, sink_tokens=2)
        assert torch.allclose(windowed(ids)[:, :4], sinks(ids)[:, :4], atol=1e-6)  # the same until token 0 leaves
        assert not torch.allclose(windowed(ids)[:, 4:], sinks(ids)[:, 4:], atol=1e-3)
    assert [s.attention.sink_tokens for s in sinks.config.layers] == [2, 2]
    with pytest.raises(Exception, match="sink_tokens"):
        with_window(model, None, sink_tokens=2)


def test_loss_by_position_averages_over_sequences():
    torch.manual_seed(0)
    model = Transformer(passkey_config(TASK, "GG", 4)).eval()
    ids, _ = TASK.batch(5)
    with torch.no_grad():
        logits = model(ids[:, :-1])
    expected = F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none").mean(0)
    assert torch.allclose(loss_by_position(model, ids), expected, atol=1e-6)


def test_receptive_field_matches_the_exercise_count():
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):
        pattern = "".join("LG"[int(torch.rand(1, generator=gen) < 0.2)] for _ in range(int(torch.randint(1, 6, (1,)))))
        window, T = int(torch.randint(1, 9, (1,))), int(torch.randint(1, 40, (1,)))
        reach = receptive_field(pattern, window, T)
        assert reach.shape == (len(pattern) + 1, T) and reach[-1].sum() == 1 and reach[-1, -1]
        assert reach[0].sum() == visible_tokens(pattern, window, T)
    with pytest.raises(ValueError, match="window"):
        receptive_field("LL", 0, 10)
    assert isinstance(plot_receptive_field(receptive_field("LLG", 3, 12)), Figure)


def test_decode_step_seconds_times_both_sides():
    times = decode_step_seconds([8, 32], window=8, d_model=32, n_heads=2, rounds=1)
    assert set(times) == {"full", "window"}
    assert all(len(t) == 2 and all(s > 0 for s in t) for t in times.values())


def test_trigger_copy_task_targets_copy_symbols_and_look_back_at_triggers():
    from llmfs.tasks import TriggerCopyTask

    task = TriggerCopyTask(n_symbols=5, trigger_rate=0.4, length=30)
    ids, targets = task.batch(64, generator=torch.Generator().manual_seed(0))
    assert ids.shape == targets.shape == (64, 31) and (ids[:, 0] == task.begin).all()
    triggered = ids == task.trigger
    assert triggered.any() and not triggered[:, 1].any()
    assert torch.equal(targets[~triggered], ids[~triggered])
    rows, cols = triggered.nonzero(as_tuple=True)
    assert torch.equal(targets[rows, cols], ids[rows, cols - 1])
    for bad in (dict(trigger_rate=1.0), dict(trigger_rate=True), dict(n_symbols=1), dict(length=1.5)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TriggerCopyTask(**bad)


def test_train_on_task_lowers_the_loss_and_loss_by_position_takes_targets():
    from llmfs import Attention, LayerSpec, MLP, ModelConfig, Rope
    from llmfs.tasks import TriggerCopyTask

    task = TriggerCopyTask(length=16)
    config = ModelConfig(vocab_size=task.vocab_size, context_length=17, d_model=32, n_layers=1, norm="rmsnorm",
                         layers=LayerSpec(Attention(2), MLP(64), positions=Rope()))
    ids, targets = task.batch(64, generator=torch.Generator().manual_seed(1))
    untrained = Transformer(config).eval()
    trained = train_on_task(config, task, steps=60, seed=0)
    before, after = loss_by_position(untrained, ids, targets), loss_by_position(trained, ids, targets)
    assert before.shape == after.shape == (17,)
    assert after.mean() < before.mean() - 0.5
    with pytest.raises(ValueError, match="batch_size"):
        train_on_task(config, task, steps=1, seed=0, batch_size=0)
