"""Small helpers for the chapter notebooks: pick a device, glue values into the book, show package source."""

import importlib.util
import inspect

import torch


def pick_device() -> str:
    """Return the best available device name ("cuda", "mps" or "cpu"), so the same notebook runs anywhere."""
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def glue(name: str, value, display: bool = False) -> None:
    """Glue `value` under `name` for the book's {glue} roles; a no-op where myst-nb is absent (e.g. Colab)."""
    if importlib.util.find_spec("myst_nb") is None:
        return
    from myst_nb import glue as myst_glue

    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()  # a numpy or torch scalar: its repr, np.float64(2.5), would not format in the book
    myst_glue(name, value, display=display)


def show(obj):
    """Display the real source of a package function, class, method or module, highlighted as Python.

    The book shows the package's own code this way, never a copy that could drift from it.
    """
    from IPython.display import Code, display

    try:
        source = inspect.getsource(obj)
    except (TypeError, OSError) as err:
        raise TypeError(
            f"show() needs a function, class, method or module defined in Python source; "
            f"{obj!r} has no source to show ({err})"
        ) from None
    display(Code(source, language="python"))
