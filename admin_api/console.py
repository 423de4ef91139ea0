"""The console: a static page served at ``/`` that drives the public admin API.

Three files shipped in the package (``admin_api/console/``), read once at import, answered
with a strict Content-Security-Policy (no inline code, nothing from another origin), a strong
ETag and ``Cache-Control: no-cache`` (the browser revalidates; a 304 costs no body).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from origin.http import error_json

CONSOLE_DIR = Path(__file__).with_name("console")

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)

MEDIA_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
}

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    # Signed URLs are bearer capabilities: never hand them to another site as a referrer.
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def load_assets(folder: Path = CONSOLE_DIR) -> dict[str, Asset]:
    assets: dict[str, Asset] = {}
    for name, media_type in MEDIA_TYPES.items():
        body = (folder / name).read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        assets[name] = Asset(body=body, media_type=media_type, etag=etag)
    return assets


def _answer(request: Request, asset: Asset) -> Response:
    headers = {**SECURITY_HEADERS, "ETag": asset.etag, "Cache-Control": "no-cache"}
    tags = {t.strip() for t in request.headers.get("if-none-match", "").split(",")}
    if asset.etag in tags or "*" in tags:
        return Response(status_code=304, headers=headers)
    body = b"" if request.method == "HEAD" else asset.body
    response = Response(body, media_type=asset.media_type, headers=headers)
    response.headers["Content-Length"] = str(len(asset.body))
    return response


def console_routes(folder: Path = CONSOLE_DIR) -> list[Route]:
    """``GET /`` (the page) and ``GET /console/{file}`` (its stylesheet and script)."""
    assets = load_assets(folder)

    async def page(request: Request) -> Response:
        return _answer(request, assets["index.html"])

    async def asset(request: Request) -> Response:
        name = request.path_params["file"]
        found = assets.get(name) if name != "index.html" else None
        if found is None:
            return error_json(404, "not_found", "no such console file")
        return _answer(request, found)

    return [
        Route("/", page, methods=["GET", "HEAD"]),
        Route("/console/{file}", asset, methods=["GET", "HEAD"]),
    ]
