"""Count-model baselines and the character tokenizer."""

import math

import pytest
import torch

from llmfs import get_tokenizer, load_corpus
from llmfs.baselines import ngram_loss


def test_unigram_of_a_uniform_text_is_log_vocab():
    ids = torch.arange(4).repeat(50)
    assert ngram_loss(ids, ids, 1, 4) == pytest.approx(math.log(4))


def test_bigram_learns_a_deterministic_sequence():
    ids = torch.arange(5).repeat(200)  # 0 1 2 3 4 0 1 ...: each token fixes the next
    assert ngram_loss(ids, ids, 2, 5, smoothing=1e-3) < 0.01 < ngram_loss(ids, ids, 1, 5)


@pytest.mark.parametrize("kwargs, match", [({"order": 3}, "order"), ({"vocab_size": 0}, "vocab_size"),
                                           ({"smoothing": float("nan")}, "smoothing"), ({"vocab_size": 2}, "lie in")])
def test_ngram_loss_rejects_bad_input(kwargs, match):
    args = {"train_ids": [0, 1, 2], "val_ids": [0, 1], "order": 1, "vocab_size": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        ngram_loss(**args)


def test_char_tokenizer_round_trips_the_corpus():
    tokenizer = get_tokenizer("char")
    text = load_corpus()[:2000]
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert 30 < tokenizer.n_vocab < 100
    with pytest.raises(ValueError, match="not in the character vocabulary"):
        tokenizer.encode("\u00e9")
