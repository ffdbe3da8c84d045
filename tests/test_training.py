"""The training loop on a tiny bigram model, so these tests do not depend on the Transformer."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from llmfs.datasets import TokenWindows
from llmfs.training import History, evaluate, lm_loss, set_seed, train, z_loss

VOCAB = 16


def bigram_model(seed=0):
    """Token ids (B, T) -> logits (B, T, VOCAB), with dropout so seeding inside `train` matters."""
    set_seed(seed)
    return nn.Sequential(nn.Embedding(VOCAB, 32), nn.Dropout(0.1), nn.Linear(32, VOCAB))


def cyclic_loaders(seed=0, batch_size=8):
    """A stream that repeats 0, 1, ..., 15: each token predicts the next, so it can be learned exactly."""
    ids = torch.arange(VOCAB).repeat(20)  # (320,)
    windows = TokenWindows(ids, context_length=8, stride=3)
    generator = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(windows, batch_size=batch_size, shuffle=True, drop_last=True, generator=generator)
    val_loader = DataLoader(windows, batch_size=batch_size)
    return train_loader, val_loader


def run(seed=0, steps=12, **kwargs):
    train_loader, val_loader = cyclic_loaders(seed)
    return train(bigram_model(seed), train_loader, val_loader, steps=steps, seed=seed, progress=False, **kwargs)


def test_lm_loss_is_cross_entropy_over_all_positions():
    logits = torch.randn(2, 3, 5)
    targets = torch.randint(0, 5, (2, 3))
    expected = torch.stack([-logits[b, t].log_softmax(-1)[targets[b, t]] for b in range(2) for t in range(3)]).mean()
    assert torch.allclose(lm_loss(logits, targets), expected)
    uniform = lm_loss(torch.zeros(2, 3, 5), targets)
    assert torch.allclose(uniform, torch.log(torch.tensor(5.0)))


def test_lm_loss_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"logits \(B, T, V\)"):
        lm_loss(torch.zeros(6, 5), torch.zeros(6, dtype=torch.long))
    with pytest.raises(ValueError, match="targets"):
        lm_loss(torch.zeros(2, 3, 5), torch.zeros(2, 4, dtype=torch.long))


def test_same_seed_gives_bitwise_identical_losses():
    first, second = run(seed=3), run(seed=3)
    assert first.step_loss == second.step_loss
    assert first.val_loss == second.val_loss
    assert run(seed=4).step_loss != first.step_loss


def test_history_records_eval_points():
    history = run(steps=25, eval_every=10, eval_batches=2)
    assert isinstance(history, History)
    assert history.steps == [10, 20, 25]
    assert len(history.train_loss) == len(history.val_loss) == len(history.tokens_seen) == 3
    assert len(history.step_loss) == 25
    assert history.tokens_seen == [10 * 8 * 8, 20 * 8 * 8, 25 * 8 * 8]
    assert history.train_loss[0] == pytest.approx(sum(history.step_loss[:10]) / 10)
    assert history.train_loss[2] == pytest.approx(sum(history.step_loss[20:]) / 5)


def test_default_eval_every_and_no_val_loader():
    train_loader, _ = cyclic_loaders()
    history = train(bigram_model(), train_loader, steps=30, progress=False)
    assert history.steps == [3 * k for k in range(1, 11)]
    assert history.val_loss == []


def test_loss_decreases_when_overfitting_and_loader_cycles():
    # 104 windows make 13 batches per epoch: 52 steps run through the training loader four times.
    assert len(cyclic_loaders()[0]) == 13
    history = run(steps=52, lr=3e-2, weight_decay=0.0, eval_every=13)
    assert history.step_loss[0] > 2.0  # about ln(16) = 2.77 at initialisation
    assert history.val_loss[-1] < 0.1
    assert history.train_loss == sorted(history.train_loss, reverse=True)
    assert history.val_loss == sorted(history.val_loss, reverse=True)


def test_evaluate_restores_mode_and_does_not_track_gradients():
    model = bigram_model()
    _, val_loader = cyclic_loaders()
    model.train()
    loss = evaluate(model, val_loader, max_batches=2)
    assert model.training
    assert isinstance(loss, float) and loss > 0
    model.eval()
    evaluate(model, val_loader)
    assert not model.training
    assert all(p.grad is None for p in model.parameters())


def test_evaluate_is_a_per_token_mean_over_the_whole_loader():
    model = bigram_model().eval()
    _, val_loader = cyclic_loaders()
    inputs = torch.stack([w[0] for w in val_loader.dataset])  # (N, T)
    targets = torch.stack([w[1] for w in val_loader.dataset])
    with torch.no_grad():
        expected = lm_loss(model(inputs), targets).item()
    assert evaluate(model, val_loader) == pytest.approx(expected, rel=1e-5)


def test_evaluate_rejects_empty_loader_and_bad_max_batches():
    model = bigram_model()
    with pytest.raises(ValueError, match="no batches"):
        evaluate(model, [])
    with pytest.raises(ValueError, match="max_batches"):
        evaluate(model, cyclic_loaders()[1], max_batches=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(steps=0), "steps"),
        (dict(steps=2.5), "steps"),
        (dict(steps=5, eval_every=0), "eval_every"),
        (dict(steps=5, eval_batches=0), "eval_batches"),
        (dict(steps=5, lr=0), "lr"),
        (dict(steps=5, lr=-1e-3), "lr"),
        (dict(steps=5, weight_decay=-0.1), "weight_decay"),
        (dict(steps=5, grad_clip=0), "grad_clip"),
        (dict(steps=5, seed=-1), "seed"),
    ],
)
def test_train_rejects_bad_arguments(kwargs, match):
    train_loader, _ = cyclic_loaders()
    with pytest.raises(ValueError, match=match):
        train(bigram_model(), train_loader, progress=False, **kwargs)


def test_train_rejects_non_module_and_empty_loader():
    with pytest.raises(TypeError, match="nn.Module"):
        train(lambda ids: ids, cyclic_loaders()[0], steps=1, progress=False)
    with pytest.raises(ValueError, match="no batches"):
        train(bigram_model(), [], steps=1, progress=False)


def test_set_seed_repeats_random_draws():
    set_seed(7)
    first = torch.rand(3)
    set_seed(7)
    assert torch.equal(torch.rand(3), first)


# --- z-loss ---


def test_z_loss_is_the_mean_squared_log_normalizer():
    logits = torch.randn(2, 3, 5)
    assert torch.allclose(z_loss(logits), torch.logsumexp(logits, -1).pow(2).mean())
    # shifting all logits by c shifts log Z by c: z_loss is zero exactly when log Z is zero
    centred = logits - torch.logsumexp(logits, -1, keepdim=True)
    assert z_loss(centred).item() < 1e-10


def test_z_loss_weight_pulls_log_z_to_zero_and_zero_weight_changes_nothing():
    plain = run(steps=30, lr=1e-2)
    assert run(steps=30, lr=1e-2, z_loss_weight=0.0).step_loss == plain.step_loss
    train_loader, _ = cyclic_loaders(0)
    inputs = next(iter(train_loader))[0]
    normalizers = {}
    for weight in (0.0, 1.0):
        model = bigram_model(0)
        train(model, train_loader, steps=60, lr=1e-2, seed=0, progress=False, z_loss_weight=weight)
        with torch.no_grad():
            normalizers[weight] = torch.logsumexp(model.eval()(inputs), -1).abs().mean().item()
    assert normalizers[1.0] < normalizers[0.0] / 2


@pytest.mark.parametrize("weight", [-1e-4, float("nan"), float("inf"), "1e-4", True])
def test_train_rejects_bad_z_loss_weight(weight):
    with pytest.raises(ValueError, match="z_loss_weight"):
        run(z_loss_weight=weight)


def test_z_loss_rejects_empty_vocabulary():
    with pytest.raises(ValueError, match="z_loss"):
        z_loss(torch.zeros(2, 0))
