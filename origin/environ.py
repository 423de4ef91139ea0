"""Reading one environment variable: the parsers behind ``origin.settings``, each a
``SettingsError`` (one line naming the variable) for a bad value. Standard library only."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

__all__ = ["SettingsError", "_choice", "_integer", "_list", "_number", "_parsed", "_url"]


class SettingsError(ValueError):
    """A configuration value is missing or invalid; ``str()`` is one line naming it."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


def _parsed(
    environ: Mapping[str, str], name: str, default: T, convert: Callable[[str], T], expect: str
) -> T:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return convert(raw)
    except ValueError:
        raise SettingsError(name, f"expected {expect}, got {raw[:40]!r}") from None


def _integer(
    environ: Mapping[str, str], name: str, default: int, low: int, high: int | None = None
) -> int:
    value = _parsed(environ, name, default, lambda s: int(s, 10), "an integer")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise SettingsError(name, f"must be {bound}, got {value}")
    return value


def _number(
    environ: Mapping[str, str], name: str, default: float, low: float, high: float
) -> float:
    value = _parsed(environ, name, default, float, "a number")
    if not low <= value <= high:
        raise SettingsError(name, f"must be between {low} and {high}, got {value}")
    return value


def _choice(environ: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = environ.get(name, "").strip() or default
    if value not in allowed:
        raise SettingsError(name, f"must be one of {', '.join(allowed)}, got {value[:40]!r}")
    return value


def _list(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in environ.get(name, "").split(",") if item.strip())


def _url(
    environ: Mapping[str, str], name: str, schemes: tuple[str, ...] = ("http", "https")
) -> str | None:
    value = environ.get(name, "").strip()
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in schemes or not (parts.netloc or parts.scheme == "unix"):
        raise SettingsError(name, f"expected a {'/'.join(schemes)} URL, got {value[:60]!r}")
    return value
