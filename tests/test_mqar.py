"""The MQAR task: distinct keys, each query's target is its own value, only query positions are scored."""

import pytest
import torch

from llmfs.tasks import IGNORE, MQARTask, recall_accuracy


def test_batch_scores_each_query_with_its_value():
    task = MQARTask(n_pairs=6, n_queries=4, n_keys=10, n_values=5)
    inputs, targets = task.batch(32, torch.Generator().manual_seed(0))
    assert inputs.shape == targets.shape == (32, 2 * 6 + 2 * 4 - 1)
    for row_in, row_t in zip(inputs, targets):
        keys, values = row_in[:12:2], row_in[1:12:2]
        assert len(set(keys.tolist())) == 6 and bool((keys < 10).all()) and bool((values >= 10).all())
        memory = dict(zip(keys.tolist(), values.tolist()))
        scored = (row_t != IGNORE).nonzero().flatten().tolist()
        assert scored == [12, 14, 16, 18]
        assert all(memory[int(row_in[i])] == int(row_t[i]) for i in scored)
        assert len({int(row_in[i]) for i in scored}) == 4  # distinct queries


def test_a_model_that_looks_up_the_answer_scores_one_and_chance_is_one_over_values():
    task = MQARTask(n_pairs=5, n_keys=8, n_values=4)

    class Oracle(torch.nn.Module):
        def forward(self, idx):
            logits = torch.zeros(*idx.shape, task.vocab_size)
            for b, row in enumerate(idx.tolist()):
                memory = dict(zip(row[:10:2], row[1:10:2]))
                for t, token in enumerate(row):
                    if t >= 10 and t % 2 == 0:
                        logits[b, t, memory[token]] = 1
            return logits

    assert recall_accuracy(Oracle(), task, 16) == 1.0 and task.chance == 0.25


@pytest.mark.parametrize("kwargs", [dict(n_pairs=0), dict(n_pairs=9, n_keys=8), dict(n_queries=0),
                                    dict(n_pairs=4, n_queries=5), dict(n_values=2.0)])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        MQARTask(**kwargs)


def test_memory_recall_softmax_holds_and_fixed_states_fill_up():
    from llmfs.tasks import memory_recall

    assert memory_recall("softmax", 64, batch_size=16) == 1.0
    few, many = memory_recall("deltanet", 4, batch_size=16), memory_recall("deltanet", 128, batch_size=16)
    assert few > 0.7 and many < 0.4
    with pytest.raises(ValueError, match="rule must be"):
        memory_recall("mamba", 4)
