"""The admin API, mounted under ``/api`` by the composition root next to the origin."""

from __future__ import annotations

from origin.app import Part
from origin.settings import Settings


def admin_part(settings: Settings) -> Part:
    return Part(routes=[])
