"""The benchmark command's interface (the benchmarks themselves print ratios; they are not timed in tests)."""

import pytest

from llmfs import bench


def test_listing_names_every_benchmark(capsys):
    assert bench.main([]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in ("kv-cache", "hf-forward", "decode-vs-hf"))


def test_unknown_benchmark_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        bench.main(["kv-cach"])
    assert "unknown benchmark 'kv-cach'; choose one of kv-cache, hf-forward, decode-vs-hf, kernels" in capsys.readouterr().err


def test_best_seconds_interleaves_the_sides_and_keeps_the_best():
    calls = []
    best = bench.best_seconds({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=3)
    assert calls == ["a", "b"] * 4  # one warm-up round, then three interleaved rounds
    assert set(best) == {"a", "b"} and all(0 <= t < 1 for t in best.values())
