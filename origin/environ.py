"""Reading one environment variable: the parsers behind ``origin.settings``, each a
``SettingsError`` (one line naming the variable) for a bad value. Standard library only."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

from origin.digits import plain_int

T = TypeVar("T")

__all__ = [
    "SettingsError",
    "_choice",
    "_flag",
    "_integer",
    "_list",
    "_number",
    "_parsed",
    "_ports",
    "_schedule",
    "_url",
]


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
    value = _parsed(environ, name, default, _whole, "an integer")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise SettingsError(name, f"must be {bound}, got {value}")
    return value


def _whole(text: str) -> int:
    """Decimal digits with an optional sign (``int`` also takes ``1_000`` and non-ASCII
    digits)."""
    if not re.fullmatch(r"[+-]?[0-9]+", text, re.ASCII):
        raise ValueError(text)
    return int(text)


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


def _flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise SettingsError(name, f"expected 1 or 0 (true or false), got {raw[:40]!r}")
    return raw in ("1", "true", "yes", "on")


def _schedule(
    environ: Mapping[str, str], name: str, default: tuple[float, ...]
) -> tuple[float, ...]:
    """Seconds to wait before each retry, comma-separated (``5,300,1800``): N entries, N
    retries after the first try."""
    items = _list(environ, name)
    if not items:
        return default
    try:
        delays = tuple(float(item) for item in items)
    except ValueError:
        raise SettingsError(name, "expected seconds separated by commas, like 5,300,1800") from None
    if len(delays) > 50 or not all(0 <= d <= 7 * 86400 for d in delays):
        raise SettingsError(name, "at most 50 delays, each between 0 and 604800 seconds")
    return delays


def _ports(environ: Mapping[str, str], name: str) -> frozenset[int]:
    """Comma-separated TCP ports (``80,443``, the default)."""
    ports = _list(environ, name) or ("80", "443")
    if not all(plain_int(p) and 0 < int(p) < 65536 for p in ports):
        raise SettingsError(name, "expected ports like 80,443")
    return frozenset(int(p) for p in ports)
