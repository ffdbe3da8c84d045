"""What every mechanism's settings share: clear errors, value checks, and sizes derived from the model width.

Each mechanism (an attention kind, a feed-forward network, a position encoding) keeps a small frozen
dataclass of settings next to its module, subclassing `Settings`. A `ModelConfig` validates each layer's
settings against the model width and names the layer, the mechanism and the field when one is wrong.
"""

from __future__ import annotations

import dataclasses
import difflib
import math


class ConfigError(ValueError):
    """A config field holds a value the model cannot be built with."""


def choice(field_name: str, value, allowed) -> None:
    """Raise a ConfigError naming the field, the value and the allowed values."""
    if not any(value is a or (type(value) is type(a) and value == a) for a in allowed):
        close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{field_name}={value!r} is not allowed; choose one of {sorted(map(str, allowed))}.{hint}")


def positive_int(field_name: str, value) -> None:
    """Raise unless `value` is an int >= 1 (bools and floats such as 2.0 are refused)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{field_name} must be a positive integer, got {value!r}.")


def number(field_name: str, value, low: float | None = None, high: float | None = None,
           low_open: bool = True, high_open: bool = False) -> None:
    """Raise unless `value` is a finite real number in the given range (NaN, inf, strings and bools are refused)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ConfigError(f"{field_name} must be a finite number, got {value!r}.")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        span = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ConfigError(f"{field_name} must be in {span}, got {value!r}.")


def is_positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def boolean(field_name: str, value) -> None:
    """Raise unless `value` is True or False (strings such as "false" are refused, not read as true)."""
    if not isinstance(value, bool):
        raise ConfigError(f"{field_name} must be True or False, got {value!r}.")


class Settings:
    """Base of every mechanism's settings (each subclass is a frozen dataclass).

    Fields left as None are derived from the model width by `resolved`, which also validates; a subclass
    lists those defaults in `derived(d_model)` and its checks in `check(d_model)`.
    """

    derivable: tuple[str, ...] = ()  # the fields that may be None and are then derived

    def derived(self, d_model: int) -> dict:
        """The value each None-able field takes when left as None, where the other fields allow one.

        A field that cannot be derived (say head_dim when n_heads does not divide d_model) is left out, and
        `check` then explains why it is missing.
        """
        return {}

    def check(self, d_model: int) -> None:
        """Raise ConfigError for a bad field; called on the resolved settings."""

    def resolved(self, d_model: int):
        """A validated copy with every derived field filled in."""
        fill = {name: value for name, value in self.derived(d_model).items() if getattr(self, name) is None}
        out = dataclasses.replace(self, **fill) if fill else self
        out.check(d_model)
        return out

    def unresolved(self, d_model: int):
        """A copy with fields that equal their derived value set back to None, so they follow a new width."""
        blank = dataclasses.replace(self, **{name: None for name in self.derivable})
        keep = {name: None for name, value in blank.derived(d_model).items() if getattr(self, name) == value}
        return dataclasses.replace(self, **keep) if keep else self

    def fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self))

    def tiny(self):
        """The same mechanism shrunk for tests and the CPU (llmfs.zoo.tiny); by default unchanged."""
        return self
