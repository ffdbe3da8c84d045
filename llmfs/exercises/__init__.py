"""Self-checking exercises: each chapter registers reference solutions, and `check` tests a reader's function.

A chapter module `llmfs/exercises/chNN.py` (an appendix: `appX.py`, ids `appX.name`, e.g. `appA.name`) calls
`register(Exercise(...))` at import; this package imports every such module the first time `ids()` or
`check()` is used. In a notebook:

    llmfs.exercises.check("ch02.causal_mask", causal_mask)

prints a one-line verdict (passed, what differs, or not implemented yet) and returns True or False.
`verdict(exercise_id, fn, seed=...)` returns the same verdict as data; instructors' grading
(`python -m llmfs.course grade`) calls it with a seed of their own, so the inputs differ from the notebook's.
"""

import copy
import difflib
import importlib
import linecache
import math
import numbers
import os
import pkgutil
import re
from dataclasses import dataclass
from typing import Callable

import torch

SEED = 0  # the inputs of the notebooks' check cells
GRADING_SEED = 1  # the default hidden inputs of `python -m llmfs.course grade` (an instructor may pass another)
# chNN.name for chapter NN; appX.name for appendix X (a capital letter)
ID_PATTERN = re.compile(r"(ch\d{2}|app[A-Z])\.[a-z][a-z0-9_]*")


@dataclass
class Exercise:
    """One exercise: a reference solution, the random inputs to try it on, and how to compare answers.

    `cases(gen)` returns a list of argument tuples drawn with the seeded generator `gen` (draw every random
    value from `gen`, so that another seed gives other inputs); `compare(expected, got)` returns None when
    they agree, else a sentence saying what differs. `points` is its weight in instructors' grading.
    """

    id: str
    summary: str
    reference: Callable
    cases: Callable[[torch.Generator], list[tuple]]
    compare: Callable | None = None
    points: int = 1


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking a function: status is "passed", "failed" or "not implemented"."""

    exercise_id: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def __str__(self) -> str:
        icon = {"passed": "✅", "failed": "❌", "not implemented": "⏳"}[self.status]
        return f"{icon} {self.exercise_id}: {self.message}"


class UnknownExerciseError(KeyError):
    """Raised for an id that no chapter registered; its message lists the known ids."""

    def __str__(self) -> str:
        return self.args[0]


_registry: dict[str, Exercise] = {}
_chapters_loaded = False


def register(exercise: Exercise) -> Exercise:
    """Add `exercise` to the registry; its id must read `chNN.name` (or `appX.name`) and be new."""
    if not ID_PATTERN.fullmatch(exercise.id):
        raise ValueError(
            f"exercise id {exercise.id!r} should read 'chNN.name' (two-digit chapter, lowercase "
            f"snake_case name), e.g. 'ch02.causal_mask', or 'appX.name' for appendix X, e.g. 'appA.accept_token'"
        )
    if exercise.id in _registry:
        raise ValueError(f"exercise id {exercise.id!r} is already registered")
    _registry[exercise.id] = exercise
    return exercise


def _load_chapters() -> None:
    """Import every `ch*` and `app*` module of this package once, so their `register` calls have run."""
    global _chapters_loaded
    if _chapters_loaded:
        return
    _chapters_loaded = True
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith(("ch", "app")):
            importlib.import_module(f"{__name__}.{module.name}")


def ids() -> list[str]:
    """Return the ids of all registered exercises, sorted."""
    _load_chapters()
    return sorted(_registry)


def get(exercise_id: str) -> Exercise:
    """Return the registered exercise `exercise_id`; an unknown id raises UnknownExerciseError with a suggestion."""
    if not isinstance(exercise_id, str):
        raise TypeError(f"exercise_id must be a string like 'ch02.causal_mask', got {type(exercise_id).__name__} "
                        f"{exercise_id!r}; exercises.ids() lists them")
    _load_chapters()
    if exercise_id in _registry:
        return _registry[exercise_id]
    close = difflib.get_close_matches(exercise_id, _registry, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    known = ", ".join(ids()) or "none"
    raise UnknownExerciseError(f"unknown exercise {exercise_id!r}.{hint} Known exercises: {known}")


def default_compare(expected, got, where: str = "the result") -> str | None:
    """Compare tensors (shape, dtype, values), numbers and nested tuples/lists/dicts; None when they agree."""
    if isinstance(expected, torch.Tensor):
        return _compare_tensors(expected, got, where)
    if isinstance(expected, bool) or expected is None or isinstance(expected, str):
        return None if got == expected else f"{where} is {got!r}, expected {expected!r}"
    if isinstance(expected, (int, float)):
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if not isinstance(got, numbers.Real) or isinstance(got, bool):
            return f"{where} is a {type(got).__name__}, expected a number"
        if math.isclose(got, expected, rel_tol=1e-4, abs_tol=1e-5):
            return None
        return f"{where} is {got!r}, expected {expected!r}"
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)):
            return f"{where} is a {type(got).__name__}, expected a {type(expected).__name__}"
        if len(got) != len(expected):
            return f"{where} has {len(got)} items, expected {len(expected)}"
        for index, (want, have) in enumerate(zip(expected, got)):
            problem = default_compare(want, have, f"{where}[{index}]")
            if problem:
                return problem
        return None
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"{where} is a {type(got).__name__}, expected a dict"
        if set(got) != set(expected):
            return f"{where} has keys {sorted(map(str, got))}, expected {sorted(map(str, expected))}"
        for key in expected:
            problem = default_compare(expected[key], got[key], f"{where}[{key!r}]")
            if problem:
                return problem
        return None
    return None if got == expected else f"{where} is {got!r}, expected {expected!r}"


def _compare_tensors(expected: torch.Tensor, got, where: str) -> str | None:
    """Compare a tensor answer: type, shape, dtype, then values within rtol=1e-4, atol=1e-5."""
    if not isinstance(got, torch.Tensor):
        return f"{where} is a {type(got).__name__}, expected a tensor"
    if got.shape != expected.shape:
        return f"{where} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
    if got.dtype != expected.dtype:
        return f"{where} has dtype {got.dtype}, expected {expected.dtype}"
    got, expected = got.detach().cpu(), expected.detach().cpu()
    if not expected.is_floating_point():
        mismatch = got != expected
        if not mismatch.any():
            return None
        first = tuple(mismatch.nonzero()[0].tolist())
        return (
            f"{where} differs in {int(mismatch.sum())} of {expected.numel()} entries, "
            f"first at index {first}: got {got[first].item()}, expected {expected[first].item()}"
        )
    if torch.allclose(got, expected, rtol=1e-4, atol=1e-5, equal_nan=True):
        return None
    diff = (got - expected).abs().nan_to_num(nan=math.inf)
    worst = tuple(torch.unravel_index(diff.argmax(), diff.shape)) if diff.dim() else ()
    worst = tuple(int(i) for i in worst)
    return (
        f"{where} has wrong values: max abs diff {diff.max().item():.3g} at index {worst} "
        f"(got {got[worst].item():.6g}, expected {expected[worst].item():.6g})"
    )


def _describe_case(args: tuple) -> str:
    """Summarize a case's arguments briefly: tensors by shape and dtype, other values by repr."""
    parts = []
    for arg in args:
        if isinstance(arg, torch.Tensor):
            parts.append(f"tensor{tuple(arg.shape)} {str(arg.dtype).removeprefix('torch.')}")
        else:
            text = repr(arg)
            parts.append(text if len(text) <= 40 else text[:37] + "...")
    return "(" + ", ".join(parts) + ")"


def _is_stub(err: NotImplementedError) -> bool:
    """Whether `err` came from a `raise NotImplementedError` line in Python code outside torch (the exercise's
    stub), rather than from torch itself (an op not implemented for a dtype, layout or device)."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return True
    code = tb.tb_frame.f_code
    if code.co_filename.startswith(os.path.dirname(torch.__file__)):
        return False
    line = linecache.getline(code.co_filename, tb.tb_lineno, tb.tb_frame.f_globals).strip()
    return not line or line.startswith("raise")  # no source (e.g. exec'd code): trust the exception type


def verdict(exercise_id: str, fn: Callable, seed: int = SEED) -> Verdict:
    """Run `fn` on the exercise's random inputs drawn with `seed` and compare with the reference."""
    exercise = get(exercise_id)
    if not callable(fn):
        raise TypeError(f"check({exercise_id!r}, fn) needs your function as fn, got {type(fn).__name__}")
    gen = torch.Generator().manual_seed(seed)
    cases = exercise.cases(gen)
    compare = exercise.compare or default_compare
    for number, args in enumerate(cases, start=1):
        expected = exercise.reference(*copy.deepcopy(args))
        try:
            got = fn(*copy.deepcopy(args))
        except NotImplementedError as err:
            if not _is_stub(err):  # torch's own "not implemented for this dtype/device" is a failure
                return Verdict(exercise_id, "failed", f"input {number} of {len(cases)} {_describe_case(args)} "
                                                      f"raised NotImplementedError inside torch: {err}")
            return Verdict(
                exercise_id,
                "not implemented",
                "not implemented yet (replace the `raise NotImplementedError` with your code)",
            )
        except Exception as err:  # the reader's code may raise anything; report it rather than crash
            return Verdict(
                exercise_id,
                "failed",
                f"input {number} of {len(cases)} {_describe_case(args)} raised {type(err).__name__}: {err}",
            )
        try:
            problem = compare(expected, got)
        except Exception as err:  # e.g. a result of a shape or type the comparison cannot handle
            problem = f"comparing the result with the reference raised {type(err).__name__}: {err}"
        if problem:
            return Verdict(exercise_id, "failed", f"input {number} of {len(cases)} {_describe_case(args)}: {problem}")
    return Verdict(exercise_id, "passed", f"passed on {len(cases)} random inputs")


def check(exercise_id: str, fn: Callable, seed: int = SEED) -> bool:
    """Run `fn` on the exercise's random inputs, compare with the reference, print a verdict, return success."""
    result = verdict(exercise_id, fn, seed)
    print(result)
    return result.passed
