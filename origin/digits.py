"""Whole numbers as the contract writes them: ASCII digits only. ``str.isdigit`` also takes
``²`` (which ``int`` refuses: a ValueError where a clear error was due) and ``٣`` (which
``int`` reads as 3). Standard library only."""

from __future__ import annotations


def plain_int(text: str) -> bool:
    """Whether ``text`` is one or more ASCII digits."""
    return text.isascii() and text.isdigit()
