"""Unit tests of the exercise framework, on a toy exercise registered only for the duration of each test."""

import pytest
import torch

from llmfs import exercises
from llmfs.exercises import Exercise, check, default_compare, register

TOY_ID = "ch99.scaled_sum"


def scaled_sum(x: torch.Tensor, scale: float) -> torch.Tensor:
    """The toy reference: sum over the last axis of `x * scale`."""
    return (x * scale).sum(dim=-1)


def toy_cases(gen: torch.Generator) -> list[tuple]:
    """Five random (matrix, scale) inputs."""
    return [(torch.randn(3, 4, generator=gen), float(torch.rand(1, generator=gen)) + 0.5) for _ in range(5)]


@pytest.fixture(autouse=True)
def toy_registry(monkeypatch):
    """Give each test a copy of the registry (chapters already loaded) holding the toy exercise."""
    exercises.ids()
    monkeypatch.setattr(exercises, "_registry", dict(exercises._registry))
    register(Exercise(TOY_ID, "Scaled row sums.", scaled_sum, toy_cases))


def run_check(capsys, fn) -> tuple[bool, str]:
    """Check `fn` against the toy exercise; return the verdict and the printed line."""
    verdict = check(TOY_ID, fn)
    return verdict, capsys.readouterr().out.strip()


def test_correct_function_passes(capsys):
    verdict, out = run_check(capsys, lambda x, scale: scale * x.sum(-1))
    assert verdict is True
    assert out == f"✅ {TOY_ID}: passed on 5 random inputs"


def test_wrong_values_report_max_abs_diff_and_case(capsys):
    verdict, out = run_check(capsys, lambda x, scale: scaled_sum(x, scale) + 0.25)
    assert verdict is False
    assert out.startswith(f"❌ {TOY_ID}: input 1 of 5")
    assert "wrong values" in out and "max abs diff 0.25" in out


def test_wrong_shape_is_reported(capsys):
    verdict, out = run_check(capsys, lambda x, scale: x * scale)
    assert verdict is False
    assert "shape (3, 4), expected (3,)" in out


def test_wrong_dtype_is_reported(capsys):
    verdict, out = run_check(capsys, lambda x, scale: scaled_sum(x, scale).double())
    assert verdict is False
    assert "dtype torch.float64, expected torch.float32" in out


def test_exception_is_reported_not_raised(capsys):
    def broken(x, scale):
        raise ValueError("boom")

    verdict, out = run_check(capsys, broken)
    assert verdict is False
    assert "raised ValueError: boom" in out and "Traceback" not in out


def test_not_implemented_is_reported_as_such(capsys):
    def stub(x, scale):
        raise NotImplementedError("write me")

    verdict, out = run_check(capsys, stub)
    assert verdict is False
    assert out.startswith(f"⏳ {TOY_ID}: not implemented yet")


def test_function_cannot_corrupt_the_inputs(capsys):
    originals = toy_cases(torch.Generator().manual_seed(exercises.SEED))
    kept = [(x.clone(), scale) for x, scale in originals]
    exercises.get(TOY_ID).cases = lambda gen: originals

    def mutating(x, scale):
        result = scaled_sum(x, scale)
        x.zero_()
        return result

    verdict, _ = run_check(capsys, mutating)
    assert verdict is True
    assert all(torch.equal(x, x_kept) for (x, _), (x_kept, _) in zip(originals, kept))


def test_custom_compare_is_used(capsys):
    register(
        Exercise(
            "ch99.any_order",
            "Sorted values, in any order.",
            reference=lambda x: x.sort().values,
            cases=lambda gen: [(torch.randn(6, generator=gen),)],
            compare=lambda expected, got: None if torch.equal(got.sort().values, expected) else "different values",
        )
    )
    assert check("ch99.any_order", lambda x: x.flip(0)) is True
    assert check("ch99.any_order", lambda x: x + 1) is False
    assert "different values" in capsys.readouterr().out


def test_unknown_id_suggests_the_closest():
    with pytest.raises(KeyError) as info:
        check("ch99.scaled_sun", scaled_sum)
    message = str(info.value)
    assert "Did you mean 'ch99.scaled_sum'?" in message
    assert TOY_ID in message.split("Known exercises:")[1]


def test_duplicate_id_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register(Exercise(TOY_ID, "Again.", scaled_sum, toy_cases))


@pytest.mark.parametrize("bad_id", ["scaled_sum", "ch9.scaled_sum", "ch099.x", "CH02.mask", "ch02.Mask", "ch02.",
                                    "appa.x", "appAB.x", "app1.x", "appA."])
def test_bad_id_form_is_refused(bad_id):
    with pytest.raises(ValueError, match="chNN.name"):
        register(Exercise(bad_id, "Bad id.", scaled_sum, toy_cases))


def test_appendix_ids_register():
    register(Exercise("appZ.toy", "An appendix exercise.", scaled_sum, toy_cases))
    assert "appZ.toy" in exercises.ids()


def test_ids_are_sorted_and_include_the_toy():
    register(Exercise("ch98.first", "Sorts before the toy.", scaled_sum, toy_cases))
    listed = exercises.ids()
    assert listed == sorted(listed)
    assert {"ch98.first", TOY_ID} <= set(listed)


def test_default_compare_recurses_into_containers():
    expected = {"logits": torch.zeros(2), "pair": (1, 2.0), "name": "gpt"}
    assert default_compare(expected, {"logits": torch.zeros(2), "pair": [1, 2.0], "name": "gpt"}) is None
    assert "['pair'][1]" in default_compare(expected, {**expected, "pair": (1, 3.0)})
    assert "has keys" in default_compare(expected, {"logits": torch.zeros(2)})
    assert "has 1 items, expected 2" in default_compare((1, 2), (1,))


def test_default_compare_exact_for_integer_and_boolean_tensors():
    mask = torch.ones(3, 3, dtype=torch.bool).tril()
    assert default_compare(mask, mask.clone()) is None
    problem = default_compare(mask, torch.ones(3, 3, dtype=torch.bool))
    assert "differs in 3 of 9 entries, first at index (0, 1)" in problem


def test_torch_own_not_implemented_error_is_a_failure_not_a_stub(capsys):
    def raises_inside_torch(x, scale):
        # no cumsum kernel for sparse tensors: torch raises NotImplementedError itself, not the reader's stub
        return (x * scale).to_sparse().cumsum(-1)

    verdict, out = run_check(capsys, raises_inside_torch)
    assert verdict is False
    assert out.startswith(f"❌ {TOY_ID}: input 1 of 5") and "NotImplementedError inside torch" in out


def test_the_stub_still_reads_not_implemented(capsys):
    def stub(x, scale):
        raise NotImplementedError("replace this with your code")

    verdict, out = run_check(capsys, stub)
    assert verdict is False and "not implemented yet" in out


def test_an_error_while_comparing_is_reported_not_raised(capsys, monkeypatch):
    def broken_compare(expected, got, where="the result"):
        raise RuntimeError("cannot compare")

    monkeypatch.setattr(exercises._registry[TOY_ID], "compare", broken_compare)
    verdict, out = run_check(capsys, scaled_sum)
    assert verdict is False and "comparing the result with the reference raised RuntimeError" in out


@pytest.mark.parametrize("bad_id", [3, None, ("ch99.scaled_sum",)])
def test_a_non_string_id_is_a_clear_error(bad_id):
    with pytest.raises(TypeError, match="exercise_id must be a string"):
        check(bad_id, scaled_sum)


def test_a_non_callable_fn_is_a_clear_error():
    with pytest.raises(TypeError, match="needs your function as fn"):
        check(TOY_ID, 42)
