"""Tests for llmfs.tasks: the synthetic reverse/copy task of chapter 1."""

import pytest
import torch

from llmfs.tasks import BOS, EOS, N_SPECIAL, PAD, RecallTask


def test_batch_shapes_and_layout():
    task = RecallTask(n_symbols=5, min_len=2, max_len=7)
    batch = task.batch(16, generator=torch.Generator().manual_seed(0))
    T = int(batch.src_lengths.max())
    assert batch.src.shape == (16, T)
    assert batch.tgt_in.shape == batch.tgt_out.shape == (16, T + 1)
    assert ((batch.src_lengths >= 2) & (batch.src_lengths <= 7)).all()
    for b, n in enumerate(batch.src_lengths.tolist()):
        symbols = batch.src[b, :n]
        assert ((symbols >= N_SPECIAL) & (symbols < task.vocab_size)).all()
        assert (batch.src[b, n:] == PAD).all()
        assert torch.equal(batch.tgt_out[b, :n], symbols.flip(0))
        assert batch.tgt_out[b, n] == EOS and (batch.tgt_out[b, n + 1 :] == PAD).all()
        assert batch.tgt_in[b, 0] == BOS
        assert torch.equal(batch.tgt_in[b, 1 : n + 1], batch.tgt_out[b, :n])  # shifted right by one
        assert (batch.tgt_in[b, n + 1 :] == PAD).all()


def test_copy_mode_and_fixed_length():
    task = RecallTask(n_symbols=4, max_len=3, mode="copy")
    batch = task.batch(5, length=9, generator=torch.Generator().manual_seed(1))  # longer than max_len is allowed
    assert (batch.src_lengths == 9).all()
    assert torch.equal(batch.tgt_out[:, :9], batch.src)
    assert (batch.tgt_out[:, 9] == EOS).all()


def test_seeded_batches_repeat():
    task = RecallTask()
    a = task.batch(8, generator=torch.Generator().manual_seed(3))
    b = task.batch(8, generator=torch.Generator().manual_seed(3))
    for x, y in zip((a.src, a.src_lengths, a.tgt_in, a.tgt_out), (b.src, b.src_lengths, b.tgt_in, b.tgt_out)):
        assert torch.equal(x, y)


def test_to_str_and_vocab():
    task = RecallTask(n_symbols=3)
    assert task.vocab_size == 6
    assert task.to_str([3, 4, 5, EOS, PAD]) == "abc<eos><pad>"
    assert task.to_str(torch.tensor([BOS, 5])) == "<bos>c"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_symbols": 1},
        {"min_len": 0},
        {"min_len": 5, "max_len": 4},
        {"max_len": 2.5},
        {"mode": "sort"},
    ],
)
def test_bad_task_arguments(kwargs):
    with pytest.raises(ValueError):
        RecallTask(**kwargs)


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"batch_size": 4, "length": 0}, {"batch_size": 2.0}])
def test_bad_batch_arguments(kwargs):
    with pytest.raises(ValueError):
        RecallTask().batch(**kwargs)


def test_passkey_task_puts_the_key_at_the_asked_distance():
    from llmfs.tasks import PasskeyTask

    task = PasskeyTask(length=20)
    ids, keys = task.batch(5, distance=7, generator=torch.Generator().manual_seed(0))
    assert ids.shape == (5, 20) and (ids[:, -1] == task.query).all()
    assert torch.equal(ids[:, 20 - 1 - 7], keys) and (ids[:, 20 - 2 - 7] == task.marker).all()
    assert (ids < task.vocab_size).all()
    with pytest.raises(ValueError, match="distance must be in"):
        task.batch(2, distance=19)
