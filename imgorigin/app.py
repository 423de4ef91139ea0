"""One process, one app: the origin, the admin API, or both (``--app all|origin|admin``)."""

from __future__ import annotations

import os

from starlette.applications import Starlette

from admin_api.app import admin_routes
from origin.app import build_app, origin_routes
from origin.settings import Settings

APPS = ("all", "origin", "admin")


def create_app(settings: Settings, which: str = "all") -> Starlette:
    if which not in APPS:
        raise ValueError(f"unknown app {which!r}")
    routes = []
    if which in ("all", "admin"):
        routes.extend(admin_routes())
    if which in ("all", "origin"):
        routes.extend(origin_routes())
    return build_app(settings, routes)


def app_from_environ() -> Starlette:
    """uvicorn's factory: each worker process builds its app from the environment."""
    return create_app(Settings.from_environ(os.environ), os.environ.get("IMGORIGIN_APP", "all"))
