"""The admin API's routes, mounted by the composition root next to the origin's."""

from __future__ import annotations

from starlette.routing import BaseRoute


def admin_routes() -> list[BaseRoute]:
    return []
