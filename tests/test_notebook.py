"""Notebook helpers: device choice, glue without a book, and show() of the package's real source."""

import inspect

import pytest

import llmfs
from llmfs import notebook


def test_pick_device_names_a_torch_device():
    import torch

    device = notebook.pick_device()
    assert device in ("cuda", "mps", "cpu")
    torch.zeros(1, device=device)


def test_show_displays_the_real_source(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", shown.append)
    notebook.show(llmfs.causal_mask)
    assert shown[0].data == inspect.getsource(llmfs.causal_mask)


def test_show_refuses_objects_without_source():
    with pytest.raises(TypeError, match="show\\(\\) needs a function, class, method or module"):
        notebook.show(3)


def test_glue_is_a_no_op_without_myst_nb(monkeypatch):
    monkeypatch.setattr(notebook.importlib.util, "find_spec", lambda name: None)
    assert notebook.glue("x", 1) is None


def test_glue_stores_numpy_and_torch_scalars_as_plain_numbers(monkeypatch):
    """myst-nb formats a glued value from its repr: np.float64(2.5) would not format as a number in the book."""
    import numpy as np
    import torch

    import myst_nb

    stored = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=False: stored.update({name: value}))
    from llmfs.notebook import glue

    glue("a", np.float64(2.5))
    glue("b", torch.tensor(3))
    glue("c", "text")
    assert stored == {"a": 2.5, "b": 3, "c": "text"} and type(stored["a"]) is float
