"""What a ``/i/…`` request says: its raw path, its query, the headers the origin reads.

Pure: no I/O. The query holds only ``s`` and ``exp`` — or ``p`` with ``s`` (a policy URL,
origin.policy) — each at most once, ``exp`` ASCII digits; anything else is 400 ``bad_request``
(the query is not signed, so this costs nothing to check first).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NamedTuple
from urllib.parse import quote

from starlette.types import Receive, Scope

from origin.errors import BadRequest, BadSignature, shown
from origin.hints import HEADERS as HINT_HEADERS

MAX_EXP_DIGITS = 12


class Query(NamedTuple):
    s: str | None  # the signature
    exp: str | None  # unix seconds
    p: str | None  # a policy


class Headers(NamedTuple):
    accept: str | None
    if_none_match: str | None
    authorization: str | None
    width: bytes | None  # the raw width hint (Sec-CH-Width, else Width)
    dpr: bytes | None  # the raw DPR hint (Sec-CH-DPR, else DPR)
    edge_key: str | None = None  # the shipped nginx's cache key for this request (edge_keys)


NO_QUERY = Query(None, None, None)


def raw_path(scope: Scope) -> str:
    """The path exactly as sent (percent-encoding kept), without the query."""
    raw = scope.get("raw_path")
    if raw is None:  # not every server sends it; re-encoding is the best guess
        return quote(scope["path"], safe="/,:;=@!$&'()*+~._-%")
    path_bytes: bytes = raw.split(b"?", 1)[0]  # some clients (httpx's ASGI) include the query
    try:
        return path_bytes.decode("ascii")
    except UnicodeDecodeError:
        raise BadSignature("the URL signature does not match") from None


def split_query(query: bytes) -> Query:
    """``(s, exp, p)`` from the raw query string; anything else is a 400.

    ``p`` (a policy, origin.policy) comes only with ``s`` and never with ``exp`` (a policy
    holds its own expiry).
    """
    if not query:
        return NO_QUERY
    values: dict[bytes, bytes] = {}
    for item in query.split(b"&"):
        name, _, value = item.partition(b"=")
        if name not in (b"s", b"exp", b"p"):
            raise BadRequest(f"unknown query parameter '{shown(name)}': only s, exp and p")
        if name in values:
            raise BadRequest(f"query parameter '{name.decode()}' is repeated")
        values[name] = value
    exp = values.get(b"exp")
    if exp is not None and not (exp.isdigit() and len(exp) <= MAX_EXP_DIGITS):
        raise BadRequest("'exp' must be unix seconds")
    s = values.get(b"s")
    p = values.get(b"p")
    if p is not None:
        if exp is not None:
            raise BadRequest("a policy URL has no 'exp': its expiry is the policy's exp_")
        if s is None:
            raise BadSignature("a policy URL (p) needs its signature (s)")
    return Query(
        None if s is None else s.decode("ascii", "replace"),
        None if exp is None else exp.decode("ascii"),
        None if p is None else p.decode("ascii", "replace"),
    )


def image_id_of(path: str) -> str:
    return path[3:].split("/", 1)[0] if path.startswith("/i/") else ""


# The request headers read, by their place in read_headers' list.
HEADER_NAMES = (b"accept", b"if-none-match", b"authorization")
EDGE_KEY = b"x-imgorigin-cache-key"
WANTED_HEADERS = {
    name: index for index, name in enumerate((*HEADER_NAMES, *HINT_HEADERS, EDGE_KEY))
}


def read_headers(scope: Scope) -> Headers:
    """``Accept``, ``If-None-Match``, ``Authorization`` and the raw width and DPR hints
    (``Sec-CH-*`` before the legacy name), in one pass over the raw headers: one dict
    look-up per header (measured: no slower than three comparisons)."""
    found: list[bytes | None] = [None] * 8
    wanted = WANTED_HEADERS.get
    for name, value in scope["headers"]:
        index = wanted(name)
        if index is not None:
            earlier = found[index]
            if index < 2 and earlier is not None:  # Accept, If-None-Match: lists, so
                value = earlier + b", " + value  # repeated lines are one list
            found[index] = value
    accept, if_none_match, authorization, ch_width, width, ch_dpr, dpr, edge_key = found
    return Headers(
        None if accept is None else accept.decode("latin-1"),
        None if if_none_match is None else if_none_match.decode("latin-1"),
        None if authorization is None else authorization.decode("latin-1"),
        ch_width or width,
        ch_dpr or dpr,
        None if edge_key is None else edge_key.decode("latin-1"),
    )


def disconnected(receive: Receive) -> Callable[[], Awaitable[object]]:
    """A coroutine function that returns once the client has gone away."""

    async def gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    return gone
