"""The MQAR task: sequences of key-value pairs then questions, targets only where a value must be recalled."""

import pytest
import torch

from llmfs.recall import mqar_batch


def test_mqar_answers_are_the_values_paired_with_the_asked_keys():
    ids, targets = mqar_batch(16, n_pairs=5, n_keys=8, n_values=8, generator=torch.Generator().manual_seed(0))
    assert ids.shape == targets.shape == (16, 20)
    for row, target in zip(ids, targets):
        pairs = dict(zip(row[:10:2].tolist(), row[1:10:2].tolist()))
        assert len(pairs) == 5 and all(k < 8 <= v < 16 for k, v in pairs.items())  # distinct keys, values apart
        assert sorted(row[10::2].tolist()) == sorted(pairs)  # every key is asked once
        assert (target[:10] == -100).all() and (target[11::2] == -100).all()
        # at each asked key, the model must predict the value paired with it (the next token)
        assert [pairs[k] for k in row[10::2].tolist()] == target[10::2].tolist() == row[11::2].tolist()


def test_mqar_refuses_more_pairs_than_keys():
    with pytest.raises(ValueError, match="n_pairs"):
        mqar_batch(2, n_pairs=9, n_keys=8, n_values=8)
