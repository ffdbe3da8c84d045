"""Corpus loading, the contiguous split, next-token windows and the ready-made loaders."""

import hashlib
from importlib import resources

import numpy as np
import pytest
import torch

from llmfs.datasets import SHAKESPEARE_WORKS, TokenWindows, corpus_names, load_corpus, make_loaders, train_val_split
from llmfs.tokenizer import get_tokenizer

SHAKESPEARE_SHA256 = {
    "as_you_like_it": "5954146ea5d9231477fed18ee11e0f22267e4d4d4213a39d56e343047e6d8bdf",
    "hamlet": "bbe5635616c6e0e0bcf01b7b8c324be8b42451c51848f11c283bd2f4442b1e0a",
    "henry_v": "336564231a0d5aa8dfb4b27964670fbbe27886a2d429f96facfa35c41dda09b9",
    "julius_caesar": "ee8ca8e9edb603625af98acb395fdd8c1a1697b064444a989dc21817b73ca7b5",
    "lear": "7ac00e23da6e4874b715b3c3c0c1cdc442bc790eb6ac3f39c0610052e5e636fa",
    "macbeth": "54e1d8055ffa2aec7e831ec43044dd646cacdfce5bf333fa81e6af9c0363c3b7",
    "merchant_of_venice": "97642a677f13b095c481d712734876908db828624e01024a42f8b5ad93c6c599",
    "midsummer_nights_dream": "fe198104bcbcfa38bbf24c21073844dcbc5be6b8b7cd1bb76a68099f12667152",
    "much_ado_about_nothing": "d47957039342adc96b4b4a3d3871a980de1193127c768b978d368f3d17625c50",
    "othello": "12c32a0e148c3a2f4d9bb5710198f18cd04a5f8197f8cbeb25ca482174382d3d",
    "richard_iii": "98140214b31451a5b9e4af8bdae9ec1c24cb0966aeabbcaed21d11c8364fe9d9",
    "romeo_and_juliet": "6a5e0c9ee103a9bd95d8b045f5c53f66779b45b198788db458075f828a0425f4",
    "sonnets": "edb826e5a801c955ab21026b3660306838fbf29ec29ea01886b2854c6d639b55",
    "tempest": "76b1bfcff40ead1585c280a7f14147c2761c7b9e6d6fb8598e7aae6e99509e26",
    "twelfth_night": "bb5b25bd3fe7a34776cab3f6205b410fa442059657aba082334edc80eea958ef",
}


# --- corpus ---


def test_vendored_shakespeare_is_intact():
    assert sorted(SHAKESPEARE_WORKS) == list(SHAKESPEARE_WORKS) == sorted(SHAKESPEARE_SHA256)
    folder = resources.files("llmfs") / "data" / "shakespeare"
    for work, sha256 in SHAKESPEARE_SHA256.items():
        assert hashlib.sha256((folder / f"{work}.txt").read_bytes()).hexdigest() == sha256, work


def test_load_corpus():
    assert corpus_names() == ["shakespeare"]
    text = load_corpus()
    assert text is load_corpus("shakespeare")
    assert text.isascii()
    assert 1_800_000 < len(text) < 2_000_000
    folder = resources.files("llmfs") / "data" / "shakespeare"
    starts = [text.index((folder / f"{work}.txt").read_text()[:200]) for work in SHAKESPEARE_WORKS]
    assert starts[0] == 0 and starts == sorted(starts)
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_unknown_corpus():
    with pytest.raises(ValueError, match=r"unknown corpus name 'tinystories'.*\['shakespeare'\]"):
        load_corpus("tinystories")


# --- split ---


def test_split_is_contiguous_first_train_then_val():
    ids = list(range(100))
    train, val = train_val_split(ids)
    assert train == list(range(90)) and val == list(range(90, 100))
    train, val = train_val_split("abcdefghij", val_fraction=0.3)
    assert (train, val) == ("abcdefg", "hij")
    train, val = train_val_split(torch.arange(10), 0.5)
    assert torch.equal(torch.cat([train, val]), torch.arange(10))


@pytest.mark.parametrize("val_fraction", [0, 1, -0.1, 1.5, "0.1", None])
def test_split_rejects_bad_fraction(val_fraction):
    with pytest.raises(ValueError, match="val_fraction"):
        train_val_split(list(range(10)), val_fraction)


def test_split_rejects_an_empty_side():
    with pytest.raises(ValueError, match="empty"):
        train_val_split([1, 2, 3], 0.1)


# --- windows ---


def test_window_contents_and_shift():
    windows = TokenWindows(list(range(10)), context_length=4, stride=2)
    # starts 0, 2, 4: each window needs 5 tokens, and 4 + 5 = 9 <= 10 but 6 + 5 = 11 > 10
    assert len(windows) == 3
    inputs, targets = windows[1]
    assert inputs.dtype == targets.dtype == torch.long
    assert inputs.tolist() == [2, 3, 4, 5]
    assert targets.tolist() == [3, 4, 5, 6]
    assert windows[-1][0].tolist() == [4, 5, 6, 7]


@pytest.mark.parametrize("n_tokens", range(5, 30))
@pytest.mark.parametrize("context_length, stride", [(4, 1), (4, 3), (4, 4), (4, 7), (1, 1)])
def test_len_is_exact(n_tokens, context_length, stride):
    ids = torch.arange(n_tokens)
    windows = TokenWindows(ids, context_length, stride)
    starts = [s for s in range(0, n_tokens, stride) if s + context_length + 1 <= n_tokens]
    assert len(windows) == len(starts)
    for index, start in enumerate(starts):
        inputs, targets = windows[index]
        assert inputs.tolist() == list(range(start, start + context_length))
        assert targets.tolist() == list(range(start + 1, start + context_length + 1))
    with pytest.raises(IndexError):
        windows[len(starts)]


def test_default_stride_gives_non_overlapping_windows():
    windows = TokenWindows(np.arange(13), context_length=4)
    assert windows.stride == 4
    assert [w[0].tolist() for w in windows] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(context_length=0), ValueError, "context_length"),
        (dict(context_length=2.5), ValueError, "context_length"),
        (dict(context_length=True), ValueError, "context_length"),
        (dict(context_length=4, stride=0), ValueError, "stride"),
        (dict(context_length=10), ValueError, "at least context_length"),
    ],
)
def test_windows_reject_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        TokenWindows(list(range(10)), **kwargs)


def test_windows_reject_bad_ids():
    with pytest.raises(ValueError, match="1-D"):
        TokenWindows(torch.zeros(2, 10, dtype=torch.long), 4)
    with pytest.raises(TypeError, match="integers"):
        TokenWindows(torch.rand(10), 4)
    with pytest.raises(TypeError, match="encode the text first"):
        TokenWindows("some text", 4)


# --- loaders ---


def test_make_loaders_batches_and_seeding():
    tokenizer = get_tokenizer()
    train_loader, val_loader = make_loaders(tokenizer, context_length=16, batch_size=4, max_tokens=2_000, seed=1)
    again, _ = make_loaders(tokenizer, context_length=16, batch_size=4, max_tokens=2_000, seed=1)
    other, _ = make_loaders(tokenizer, context_length=16, batch_size=4, max_tokens=2_000, seed=2)
    first_epoch = [x for x, _ in train_loader]
    assert all(torch.equal(a, b) for a, b in zip(first_epoch, (x for x, _ in again), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first_epoch, (x for x, _ in other), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first_epoch, (x for x, _ in train_loader)))  # reshuffled

    inputs, targets = next(iter(train_loader))
    assert inputs.shape == targets.shape == (4, 16)
    assert torch.equal(inputs[:, 1:], targets[:, :-1])
    # 1800 training tokens, windows every 16 tokens: (1800 - 17) // 16 + 1 = 112; 200 for validation: 12
    assert len(train_loader.dataset) == 112 and len(val_loader.dataset) == 12
    assert train_loader.dataset.ids.tolist() == tokenizer.encode(load_corpus())[:1800]
    assert len(first_epoch) == 112 // 4
    # validation is in corpus order, so the same every time
    assert torch.equal(next(iter(val_loader))[0][0], val_loader.dataset[0][0])


def test_make_loaders_stride_only_changes_training_windows():
    train_loader, val_loader = make_loaders(get_tokenizer(), 16, 4, stride=8, max_tokens=2_000)
    assert train_loader.dataset.stride == 8 and val_loader.dataset.stride == 16


def test_make_loaders_rejects_bad_arguments():
    tokenizer = get_tokenizer()
    with pytest.raises(ValueError, match="batch_size"):
        make_loaders(tokenizer, 16, 0)
    with pytest.raises(ValueError, match="max_tokens"):
        make_loaders(tokenizer, 16, 4, max_tokens=0)
    with pytest.raises(ValueError, match="validation split has 10 tokens"):
        make_loaders(tokenizer, 16, 4, max_tokens=100)
    with pytest.raises(ValueError, match="context_length"):
        make_loaders(tokenizer, 0, 4)
    with pytest.raises(ValueError, match="batch_size=64 is larger"):
        make_loaders(tokenizer, 16, 64, max_tokens=1_000)
