"""The shipped Shakespeare corpus, a contiguous train/validation split, and next-token windows.

A language model learns from (input, target) pairs cut from one long stream of token ids:
the target is the input shifted left by one, so position t is trained to predict token t + 1.
"""

import functools
import numbers
from importlib import resources

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

# The works in `llmfs/data/shakespeare/`, in the order `load_corpus("shakespeare")` joins them
# (alphabetical by file name, so the corpus, and every split of it, is the same on every machine).
SHAKESPEARE_WORKS = (
    "as_you_like_it",
    "hamlet",
    "henry_v",
    "julius_caesar",
    "lear",
    "macbeth",
    "merchant_of_venice",
    "midsummer_nights_dream",
    "much_ado_about_nothing",
    "othello",
    "richard_iii",
    "romeo_and_juliet",
    "sonnets",
    "tempest",
    "twelfth_night",
)
_CORPORA = {"shakespeare": SHAKESPEARE_WORKS}


def corpus_names():
    """Names that `load_corpus` accepts."""
    return sorted(_CORPORA)


def load_corpus(name="shakespeare"):
    """Return the named corpus as one ASCII string: its works in fixed order, a blank line apart."""
    if not isinstance(name, str) or name not in _CORPORA:
        raise ValueError(f"unknown corpus name {name!r}; known names: {corpus_names()}")
    return _read_corpus(name)


@functools.lru_cache(maxsize=None)
def _read_corpus(name):
    """Read the works from the package data once; strings are immutable, so sharing is safe."""
    folder = resources.files("llmfs") / "data" / name
    works = [(folder / f"{work}.txt").read_text(encoding="ascii").strip() for work in _CORPORA[name]]
    return "\n\n\n".join(works) + "\n"


def train_val_split(text_or_ids, val_fraction=0.1):
    """Split a text or id sequence into its first (1 - val_fraction) and its last val_fraction.

    The split is contiguous, not shuffled: windows overlap their neighbours, so picking them at
    random for validation would put text the model trained on into the validation set.
    """
    if not isinstance(val_fraction, numbers.Real) or not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be a number strictly between 0 and 1, got {val_fraction!r}")
    n = len(text_or_ids)
    n_train = int(round(n * (1 - val_fraction)))
    if n_train == 0 or n_train == n:
        raise ValueError(
            f"cannot split {n} items with val_fraction={val_fraction}: one side would be empty"
        )
    return text_or_ids[:n_train], text_or_ids[n_train:]


def _as_id_tensor(ids):
    """Turn a list, numpy array or tensor of token ids into a 1-D int64 tensor."""
    if isinstance(ids, str):
        raise TypeError("ids must be token ids (a list, array or tensor of ints), not a str; encode the text first")
    tensor = ids.detach().cpu() if isinstance(ids, torch.Tensor) else torch.as_tensor(np.asarray(ids))
    if tensor.ndim != 1:
        raise ValueError(f"ids must be 1-D, got shape {tuple(tensor.shape)}")
    if tensor.dtype.is_floating_point or tensor.dtype.is_complex or tensor.dtype == torch.bool:
        raise TypeError(f"ids must be integers, got dtype {tensor.dtype}")
    return tensor.long()


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


class TokenWindows(Dataset):
    """Windows of `context_length` tokens, one starting every `stride` tokens, as (input, target).

    Item i is `(ids[s : s + T], ids[s + 1 : s + T + 1])` with s = i * stride and T = context_length.
    stride = context_length (the default) gives non-overlapping windows; a smaller stride overlaps.
    """

    def __init__(self, ids, context_length, stride=None):
        stride = context_length if stride is None else stride
        _check_positive_int("context_length", context_length)
        _check_positive_int("stride", stride)
        self.ids = _as_id_tensor(ids)  # (N,)
        self.context_length = int(context_length)
        self.stride = int(stride)
        # A window needs T + 1 tokens: T inputs plus the one token its last input predicts.
        if len(self.ids) < self.context_length + 1:
            raise ValueError(
                f"need at least context_length + 1 = {self.context_length + 1} tokens for one window, "
                f"got {len(self.ids)}"
            )
        self.n_windows = (len(self.ids) - self.context_length - 1) // self.stride + 1

    def __len__(self):
        return self.n_windows

    def __getitem__(self, index):
        if not -self.n_windows <= index < self.n_windows:
            raise IndexError(f"window index {index} out of range for {self.n_windows} windows")
        start = (index % self.n_windows) * self.stride
        chunk = self.ids[start : start + self.context_length + 1]  # (T + 1,)
        return chunk[:-1], chunk[1:]  # input (T,), target (T,)


def make_loaders(
    tokenizer, context_length, batch_size, stride=None, val_fraction=0.1, max_tokens=None, seed=0
):
    """Tokenize the Shakespeare corpus and return (train_loader, val_loader) of (B, T) batches.

    Training windows start every `stride` tokens (default: context_length) and are shuffled by a
    generator seeded with `seed`, dropping a last short batch; validation windows never overlap and
    are not shuffled, so each validation token is scored once and the loss is the same every time.
    `max_tokens` keeps only the first that many tokens, for quick runs on a CPU.
    """
    _check_positive_int("batch_size", batch_size)
    if max_tokens is not None:
        _check_positive_int("max_tokens", max_tokens)
    ids = tokenizer.encode(load_corpus("shakespeare"))
    if max_tokens is not None:
        ids = ids[:max_tokens]
    train_ids, val_ids = train_val_split(ids, val_fraction)
    _check_positive_int("context_length", context_length)
    if len(val_ids) < context_length + 1:
        raise ValueError(
            f"the validation split has {len(val_ids)} tokens, fewer than one window of "
            f"context_length + 1 = {context_length + 1}; raise max_tokens or val_fraction"
        )
    train_windows = TokenWindows(train_ids, context_length, stride)
    val_windows = TokenWindows(val_ids, context_length)
    if len(train_windows) < batch_size:
        raise ValueError(
            f"batch_size={batch_size} is larger than the {len(train_windows)} training windows; "
            "lower batch_size or context_length, or raise max_tokens"
        )
    generator = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(
        train_windows, batch_size=batch_size, shuffle=True, drop_last=True, generator=generator
    )
    val_loader = DataLoader(val_windows, batch_size=batch_size, shuffle=False)
    return train_loader, val_loader
