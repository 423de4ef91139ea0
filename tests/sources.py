"""A real HTTP server on 127.0.0.1 for what imgorigin fetches (aiohttp's web server): tests
say what each path answers — bytes, a redirect, a status, a slow or compressed body — and
read what every request carried."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import quote

from aiohttp import web
from yarl import URL

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    path: str
    headers: dict[str, str]


@dataclass
class SourceServer:
    port: int = 0
    routes: dict[str, Handler] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def serve(self, path: str, body: bytes, content_type: str = "image/jpeg") -> str:
        async def answer(_: web.Request) -> web.StreamResponse:
            return web.Response(body=body, content_type=content_type)

        self.routes[_key(path)] = answer
        return self.url(path)

    def serve_file(self, name: str, body: bytes, content_type: str = "image/jpeg") -> str:
        """``body`` at a fresh path ending in ``name`` (percent-encoded), its URL."""
        return self.serve(f"/files/{len(self.routes)}/{quote(name, safe='')}", body, content_type)

    def conditional(
        self, path: str, body: bytes, etag: str | None = '"v1"', last_modified: str | None = None
    ) -> str:
        """``body`` with its validators; ``304`` to a request carrying them (like a CDN or a
        web server serving a file). Serving the path again replaces the object."""

        async def answer(request: web.Request) -> web.StreamResponse:
            validators = {"ETag": etag, "Last-Modified": last_modified}
            head = {k: v for k, v in validators.items() if v is not None}
            if (etag is not None and request.headers.get("If-None-Match") == etag) or (
                etag is None
                and last_modified is not None
                and request.headers.get("If-Modified-Since") == last_modified
            ):
                return web.Response(status=304, headers=head)
            return web.Response(body=body, content_type="image/png", headers=head)

        self.routes[_key(path)] = answer
        return self.url(path)

    def gated(self, path: str, body: bytes, gate: asyncio.Event) -> str:
        """``body`` once ``gate`` is set: requests pile up meanwhile."""

        async def answer(_: web.Request) -> web.StreamResponse:
            await gate.wait()
            return web.Response(body=body, content_type="image/jpeg")

        self.routes[_key(path)] = answer
        return self.url(path)

    def count(self, path: str) -> int:
        """How many requests reached ``path`` (as registered)."""
        key = _key(path)
        return sum(1 for seen in self.seen if seen.path == key)

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        async def answer(_: web.Request) -> web.StreamResponse:
            return web.Response(status=status, headers={"Location": location})

        self.routes[_key(path)] = answer
        return self.url(path)

    def status(self, path: str, status: int, body: bytes = b"upstream secret page") -> str:
        async def answer(_: web.Request) -> web.StreamResponse:
            return web.Response(status=status, body=body, headers={"X-Upstream": "secret"})

        self.routes[_key(path)] = answer
        return self.url(path)

    def gzipped(self, path: str, body: bytes) -> str:
        async def answer(_: web.Request) -> web.StreamResponse:
            return web.Response(
                body=gzip.compress(body),
                headers={"Content-Encoding": "gzip", "Content-Type": "image/png"},
            )

        self.routes[_key(path)] = answer
        return self.url(path)

    def trickle(self, path: str, chunk: bytes, every: float, times: int) -> str:
        """A body sent ``chunk`` by ``chunk``, one every ``every`` seconds."""

        async def answer(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
            await response.prepare(request)
            for _ in range(times):
                await response.write(chunk)
                await asyncio.sleep(every)
            await response.write_eof()
            return response

        self.routes[_key(path)] = answer
        return self.url(path)

    def chunked(self, path: str, chunk: bytes, times: int) -> str:
        """A body without Content-Length: ``times`` × ``chunk``."""

        async def answer(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            for _ in range(times):
                await response.write(chunk)
            await response.write_eof()
            return response

        self.routes[_key(path)] = answer
        return self.url(path)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.rel_url.raw_path  # as sent: routes are registered percent-encoded
        self.seen.append(Seen(path, dict(request.headers)))
        handler = self.routes.get(path)
        if handler is None:
            return web.Response(status=404, body=b"no such file")
        return await handler(request)


def _key(path: str) -> str:
    """A path as a client sends it (yarl's encoding, which aiohttp's server reads back)."""
    return URL("http://h" + path).raw_path


@asynccontextmanager
async def source_server() -> AsyncIterator[SourceServer]:
    server = SourceServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:[\\s\\S]*}", server._dispatch)  # newlines too
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.port = runner.addresses[0][1]
    try:
        yield server
    finally:
        await runner.cleanup()
