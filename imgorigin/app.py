"""One process, one app: the origin, the admin API, or both (``--app all|origin|admin``)."""

from __future__ import annotations

import os

from starlette.applications import Starlette

from admin_api.app import admin_part
from origin.app import Part, build_app, origin_part
from origin.settings import Settings

APPS = ("all", "origin", "admin")


def create_app(settings: Settings, which: str = "all") -> Starlette:
    if which not in APPS:
        raise ValueError(f"unknown app {which!r}")
    parts: list[Part] = []
    if which in ("all", "admin"):
        parts.append(admin_part(settings))
    if which in ("all", "origin"):
        parts.append(origin_part(settings))
    return build_app(settings, parts)


def app_from_environ() -> Starlette:
    """uvicorn's factory: each worker process builds its app from the environment."""
    return create_app(Settings.from_environ(os.environ), os.environ.get("IMGORIGIN_APP", "all"))
