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
