"""The benchmark command's interface (the benchmarks themselves print ratios; they are not timed in tests)."""

import pytest

from llmfs import bench


def test_listing_names_every_benchmark(capsys):
    assert bench.main([]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in ("kv-cache", "hf-forward", "moe-dispatch"))


def test_unknown_benchmark_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        bench.main(["kv-cach"])
    assert "unknown benchmark 'kv-cach'; choose one of kv-cache, hf-forward, kernels" in capsys.readouterr().err
