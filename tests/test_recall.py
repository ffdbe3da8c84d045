"""Chapter 4's recall module: its sequences are `tasks.MQARTask`'s, its metrics score only recalled values."""

import math
from types import SimpleNamespace

import pytest
import torch

from llmfs.recall import recall_metrics, recall_task
from llmfs.tasks import IGNORE, MQARTask


def test_recall_task_splits_the_vocabulary_into_keys_then_values():
    task = recall_task(vocab_size=17, n_pairs=5)
    assert (task.n_keys, task.n_values, task.n_pairs, task.queries) == (8, 9, 5, 5)
    ids, targets = task.batch(16, torch.Generator().manual_seed(0))
    same_ids, same_targets = MQARTask(n_pairs=5, n_keys=8, n_values=9).batch(16, torch.Generator().manual_seed(0))
    assert torch.equal(ids, same_ids) and torch.equal(targets, same_targets)
    for row, target in zip(ids, targets):
        pairs = dict(zip(row[:10:2].tolist(), row[1:10:2].tolist()))
        assert len(pairs) == 5 and all(k < 8 <= v < 17 for k, v in pairs.items())  # distinct keys, values apart
        assert sorted(row[10::2].tolist()) == sorted(pairs)  # every key is asked once
        assert (target[:10] == IGNORE).all() and (target[11::2] == IGNORE).all()
        assert [pairs[k] for k in row[10::2].tolist()] == target[10::2].tolist()


def test_recall_task_refuses_more_pairs_than_keys():
    with pytest.raises(ValueError, match="n_pairs"):
        recall_task(vocab_size=16, n_pairs=9)


def test_recall_metrics_score_only_the_recalled_values():
    class Oracle(torch.nn.Module):
        """Puts all its mass on the next token of a known sequence: right at every recalled value."""

        def __init__(self):
            super().__init__()
            self.config = SimpleNamespace(vocab_size=16)
            self.scale = torch.nn.Parameter(torch.ones(()))

        def forward(self, ids):
            task = recall_task(16, 4)
            _, targets = task.batch(ids.shape[0], torch.Generator().manual_seed(10**6))
            logits = torch.zeros(*ids.shape, 16)
            logits[targets != IGNORE] = -50.0
            logits[targets != IGNORE] = logits[targets != IGNORE].scatter(1, targets[targets != IGNORE][:, None], 50.0)
            return logits * self.scale

    metrics = recall_metrics(Oracle(), n_pairs=4, n_sequences=8)
    assert metrics["accuracy"] == 1.0 and metrics["loss"] < 1e-6
    assert metrics["chance_loss"] == pytest.approx(math.log(8))


def test_sharing_configs_differ_only_in_kv_heads():
    from llmfs.recall import sharing_config

    configs = {n_kv: sharing_config(n_kv) for n_kv in (8, 2, 1)}
    assert {c.n_heads for c in configs.values()} == {8} and {c.head_dim for c in configs.values()} == {4}
    assert configs[8].replace(n_kv_heads=1) == configs[1]
    assert [c.n_kv_heads for c in configs.values()] == [8, 2, 1]


def test_train_recall_records_the_loss_of_every_step_and_repeats_with_its_seed():
    from llmfs.recall import sharing_config, train_recall

    runs = [train_recall(sharing_config(2, n_layers=1), steps=3, n_pairs=2, seed=5, batch_size=4) for _ in range(2)]
    assert len(runs[0]["losses"]) == 3 and all(math.isfinite(loss) for loss in runs[0]["losses"])
    assert runs[0]["losses"] == runs[1]["losses"] and runs[0]["loss"] == runs[1]["loss"]
    assert runs[0]["chance_loss"] == pytest.approx(math.log(16))
