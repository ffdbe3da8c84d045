"""The benchmark command's interface (the benchmarks themselves print ratios; they are not timed in tests)."""

import pytest
import torch

from llmfs import bench


def test_listing_names_every_benchmark(capsys):
    assert bench.main([]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in ("kv-cache", "hf-forward", "moe-dispatch", "decode-vs-hf"))


def test_unknown_benchmark_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        bench.main(["kv-cach"])
    assert "unknown benchmark 'kv-cach'; choose one of kv-cache, hf-forward, decode-vs-hf, kernels" in capsys.readouterr().err


def test_best_seconds_interleaves_the_sides_and_keeps_the_best():
    calls = []
    best = bench.best_seconds({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=3)
    assert calls == ["a", "b"] * 4  # one warm-up round, then three interleaved rounds
    assert set(best) == {"a", "b"} and all(0 <= t < 1 for t in best.values())


def test_a_side_that_times_itself_reports_its_own_seconds():
    import torch

    from llmfs import Transformer, zoo

    model = Transformer(zoo.tiny("llama3-8b", context_length=64)).eval()
    prompt = torch.zeros(1, 8, dtype=torch.long)
    best = bench.best_seconds({"decode": lambda: bench.decode_seconds(model, prompt, 4, model.new_cache(1)),
                               "fixed": lambda: 123.0}, rounds=2)
    assert best["fixed"] == 123.0 and 0 < best["decode"] < 10


def test_one_timer_serves_every_benchmark_with_its_clock_and_threads():
    import torch

    ticks = iter(range(100))
    threads_seen = []
    before = torch.get_num_threads()
    best = bench.best_seconds({"a": lambda: threads_seen.append(torch.get_num_threads())}, rounds=2,
                              clock=lambda: float(next(ticks)), threads=1)
    assert best == {"a": 1.0} and threads_seen == [1, 1, 1]  # a fake clock that ticks once per reading
    assert torch.get_num_threads() == before  # restored
    calls = []
    assert set(bench._best_interleaved({"x": lambda: calls.append(1)}, 2)) == {"x"} and len(calls) == 3
    assert set(bench._best_seconds_interleaved({"y": lambda: None}, 1)) == {"y"}


@pytest.mark.parametrize("rounds", [0, -1, 1.5, True, "3"])
def test_best_seconds_rejects_a_bad_round_count(rounds):
    with pytest.raises(ValueError, match="rounds must be a positive integer"):
        bench.best_seconds({"a": lambda: None}, rounds)


def test_cached_step_seconds_restores_the_cache_between_calls():
    from llmfs.cache import ConcatKVLayerCache
    import torch

    cache = ConcatKVLayerCache(1)
    cache.update(torch.zeros(1, 1, 3, 2))
    seen_lengths = []

    def layer(x, positions, cache):
        seen_lengths.append(cache.length)
        cache.update(x)  # a decode step appends one token
        return x

    seconds = bench.cached_step_seconds(layer, torch.zeros(1, 1, 1, 2), torch.tensor([3]), cache, repeats=4)
    assert seen_lengths == [3, 3, 3, 3] and cache.length == 3 and cache.tensors[0].shape[2] == 3
    assert 0 <= seconds < 1


@pytest.mark.parametrize("repeats", [0, -1, 2.5, True, "3"])
def test_cached_step_seconds_rejects_bad_repeats(repeats):
    import torch
    from llmfs.cache import ConcatKVLayerCache

    with pytest.raises(ValueError, match="repeats"):
        bench.cached_step_seconds(lambda *a, **k: None, torch.zeros(1), torch.zeros(1), ConcatKVLayerCache(1), repeats)


def test_moe_dispatch_timings_check_equal_outputs_and_time_all_four_sides():
    pytest.importorskip("transformers")
    threads = torch.get_num_threads()
    best = bench.moe_dispatch_timings(rounds=1)
    assert set(best) == {"llmfs sorted", "llmfs loop", "transformers eager", "transformers grouped_mm"}
    assert all(0 < seconds < 60 for seconds in best.values())
    assert torch.get_num_threads() == threads  # the fixed thread count is restored
