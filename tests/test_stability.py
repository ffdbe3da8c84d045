"""llmfs.stability: the attention statistics chapter 7 records while training."""

import math

import pytest
import torch

import llmfs
from llmfs.stability import attention_stats, train_recording


def test_attention_stats_of_uniform_and_sharp_attention():
    q = torch.zeros(1, 2, 4, 8)  # every score 0: each query spreads evenly over its past
    largest, entropy = attention_stats(q, torch.randn(1, 2, 4, 8))
    assert largest == 0.0
    torch.testing.assert_close(entropy, torch.full((2,), sum(math.log(t + 1) for t in range(4)) / 4))
    k = torch.zeros(1, 1, 3, 4)
    k[..., 0, 0] = 100.0  # the first key dominates every query's scores
    q = torch.zeros(1, 1, 3, 4)
    q[..., 0] = 1.0
    largest, entropy = attention_stats(q, k)
    assert largest == pytest.approx(100 / 2) and entropy.item() < 1e-6


def tiny_config():
    return llmfs.ModelConfig(vocab_size=12, context_length=8, d_model=32, n_layers=2, n_heads=2, norm="rmsnorm",
                             positions="rope")


def test_train_recording_logs_every_record_every_steps_and_repeats():
    ids = torch.randint(0, 12, (300,), generator=torch.Generator().manual_seed(0))
    val = ids[:45].view(5, 9)
    logs = [train_recording(tiny_config(), 1e-3, 3, ids, val, steps=20, context=8, batch_size=4, record_every=5)
            for _ in range(2)]
    assert logs[0]["step"] == [1, 5, 10, 15, 20] and len(logs[0]["max_logit"]) == len(logs[0]["min_entropy"]) == 5
    assert logs[0] == logs[1]
    assert 0 < logs[0]["val_loss"] < 2 * math.log(12)


def test_train_recording_refuses_bad_settings():
    ids = torch.randint(0, 12, (300,))
    with pytest.raises(ValueError, match="steps"):
        train_recording(tiny_config(), 1e-3, 0, ids, ids[:18].view(2, 9), steps=5, context=8, batch_size=4)
    with pytest.raises(ValueError, match="record_every"):
        train_recording(tiny_config(), 1e-3, 0, ids, ids[:18].view(2, 9), steps=20, context=8, batch_size=4,
                        record_every=0)
