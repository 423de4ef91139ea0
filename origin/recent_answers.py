"""Recent answers, ready to send again: tier 0 in front of ``ServeImage`` (one second).

A signed, public, immutable ``/i/…`` answer (a ``GET`` without ``exp``, ``Authorization``,
``If-None-Match`` or nginx's ``X-Imgorigin-Cache-Key``, whose ``Vary`` names nothing but
``Accept``) depends only on the exact request path, the exact query (``s`` and, for a policy
URL, the policy), ``Accept`` and the Client Hints sent. ``RecentAnswers`` keeps such answers,
keyed by those, for ``SECONDS``: a repeat is answered with the same headers and the same body
object, without checking the query, the signature, the plan or the memory LRU again. The
first request after that second takes the whole path again (and refreshes the entry), so:

- a deletion (or a deleted signing key) reaches this process at once (``forget_*`` bump the
  lookup's epoch, which invalidates every entry) and other processes within the lookup's TTL
  plus ``SECONDS`` (3 + 1 s, inside the contract's 5 s);
- a derivative the memory LRU evicted is kept alive at most ``SECONDS`` longer, and the table
  holds at most ``MAX_ENTRIES`` answers and ``max_bytes`` of bodies (cleared when full).

Answers are captured from what ``ServeImage`` sends, so there is one source of truth for
their headers; the per-request headers (``X-Request-ID``, nosniff) are added per request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from urllib.parse import unquote

from starlette.types import Message, Scope, Send

from origin.access_log import AccessLog, Timings, own_timings, request_id
from origin.hints import HEADERS as HINT_HEADERS
from origin.http import IMMUTABLE as IMMUTABLE_TEXT
from origin.metrics import Metrics
from origin.request import EDGE_KEY

SECONDS = 1.0
AT_ONCE = "answer_at_once"  # the lifespan state's AtOnce, read by imgorigin.protocol
MAX_ENTRIES = 4096
IMMUTABLE = IMMUTABLE_TEXT.encode("ascii")  # the one Cache-Control a kept answer has
# Request headers whose request never comes from the table: those that make an answer
# personal or conditional, and nginx's cache key (origin.edge_keys: the full path records it,
# or answers ``no-store`` when no purge could name it, as for a raw ``#…``).
NOT_KEPT = frozenset((b"authorization", b"if-none-match", EDGE_KEY))
# Client Hints: part of the key (an answer that depends on them says so in ``Vary`` and is
# never kept; one that does not is kept once per distinct set of hints, bounded by MAX_ENTRIES).
HINTS = frozenset(HINT_HEADERS)

Wire = tuple[bytes, bytes]  # the header lines of an answer, and its body
# AtOnce as imgorigin.protocol calls it: (request target, headers) -> the answer, or None
AnswerNow = Callable[[bytes, list[tuple[bytes, bytes]]], Wire | None]
AnswerKey = tuple[bytes, bytes, bytes | None, tuple[tuple[bytes, bytes], ...]]


class Answer:
    __slots__ = ("body", "epoch", "head", "length", "until", "wire")

    def __init__(
        self, head: list[tuple[bytes, bytes]], body: bytes, until: float, epoch: int
    ) -> None:
        self.head = head
        self.wire = wire(head)
        self.body = body
        self.length = len(body)
        self.until = until
        self.epoch = epoch


def wire(head: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Header lines as HTTP/1.1 sends them."""
    return b"".join(b"%s: %s\r\n" % header for header in head)


def answer_key(scope: Scope) -> AnswerKey | None:
    """``(raw path, query, Accept, hints)``, or None when the request may not use the table."""
    raw: bytes | None = scope.get("raw_path")
    if scope["method"] != "GET" or raw is None:
        return None
    return key_of(raw, scope["query_string"], scope["headers"])


def key_of(raw: bytes, query: bytes, headers: Iterable[tuple[bytes, bytes]]) -> AnswerKey | None:
    """``answer_key`` of a ``GET`` from its raw path, query and headers (lower-case names)."""
    accept = None
    hints: tuple[tuple[bytes, bytes], ...] = ()
    for name, value in headers:
        if name == b"accept":  # repeated lines are one list (origin.request.read_headers)
            accept = value if accept is None else accept + b", " + value
        elif name in HINTS:
            hints += ((name, value),)
        elif name in NOT_KEPT:
            return None
    return raw, query, accept, hints


class RecentAnswers:
    """The table; ``epoch`` reads the lookup's epoch (bumped by every ``forget``)."""

    def __init__(self, epoch: Callable[[], int], max_bytes: int) -> None:
        self.epoch = epoch
        self.max_bytes = max_bytes
        self.enabled = max_bytes > 0
        self.bytes = 0
        self._answers: dict[AnswerKey, Answer] = {}

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, key: AnswerKey) -> Answer | None:
        answer = self._answers.get(key)
        if answer is None:
            return None
        if answer.until < time.monotonic() or answer.epoch != self.epoch():
            del self._answers[key]
            self.bytes -= answer.length
            return None
        return answer

    def put(self, key: AnswerKey, head: list[tuple[bytes, bytes]], body: bytes) -> None:
        if not self.enabled or len(body) > self.max_bytes:
            return
        if len(self._answers) >= MAX_ENTRIES or self.bytes + len(body) > self.max_bytes:
            self._answers.clear()
            self.bytes = 0
        old = self._answers.get(key)
        if old is not None:
            self.bytes -= old.length
        self._answers[key] = Answer(head, body, time.monotonic() + SECONDS, self.epoch())
        self.bytes += len(body)


def cacheable(head: list[tuple[bytes, bytes]]) -> bool:
    """An answer the same for everyone who sends the same path, query and ``Accept``."""
    immutable = False
    for name, value in head:
        if name == b"cache-control":
            immutable = value == IMMUTABLE
        elif (name == b"vary" and value != b"Accept") or name == b"set-cookie":
            return False
    return immutable


def capturing(
    hot: RecentAnswers, key: AnswerKey, own: list[tuple[bytes, bytes]], send: Send
) -> Send:
    """``send`` that also offers a 200 to ``hot`` (without the request's ``own`` headers)."""
    head: list[tuple[bytes, bytes]] | None = None

    async def capture(message: Message) -> None:
        nonlocal head
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            if message["status"] == 200 and cacheable(headers):
                head = [h for h in headers if h not in own]
        elif head is not None and not message.get("more_body", False):
            hot.put(key, head, message.get("body", b""))
        await send(message)

    return capture


class AtOnce:
    """A repeat answered by the HTTP server's protocol itself (``imgorigin serve``, whose
    protocol calls this from the lifespan state's ``AT_ONCE`` for a ``GET`` that arrived
    whole on an idle kept-alive HTTP/1.1 connection): no ASGI scope, task or ``send``.

    It answers exactly what the ASGI path (origin.app.FastObserve) would answer from the
    table — the same headers, the same body object, the request's own id and nosniff — and
    is observed the same way (the memory-tier counters, the request counter, the access
    line), or returns None and the request takes the ASGI path.
    """

    def __init__(self, recent: RecentAnswers, log: AccessLog, routes: Sequence[tuple[str, str]]):
        self.recent = recent
        self.log = log
        self.routes = tuple((prefix.encode("ascii"), template) for prefix, template in routes)

    def __call__(self, target: bytes, headers: list[tuple[bytes, bytes]]) -> Wire | None:
        """``target``: the request target as sent; ``headers`` with lower-case names. The
        answer's headers after the status line and the server's own, and its body.

        The key is the target split at ``?``: a kept key's path and query came from uvicorn's
        parse of an origin-form target, so a target with a fragment or in absolute form
        never equals one and takes the ASGI path."""
        if not self.recent.enabled:
            return None
        raw, _, query = target.partition(b"?")
        template = self._template(raw)
        if template is None:
            return None
        key = key_of(raw, query, headers)
        kept = None if key is None else self.recent.get(key)
        if kept is None:
            return None
        t = own_timings(request_id(headers))
        served(kept, t, self.log.metrics)
        path = raw.decode("ascii")  # a kept answer's path was ASCII (origin.request.raw_path)
        self.log.note(template, "GET", unquote(path) if "%" in path else path, t)
        return kept.wire + wire(t.headers), kept.body

    def _template(self, raw: bytes) -> str | None:
        """The route template of a fast path (``/i/{path:path}``), as the router names it."""
        for prefix, template in self.routes:
            if raw.startswith(prefix):
                return template
        return None


def served(kept: Answer, t: Timings, metrics: Metrics) -> None:
    """Note a kept answer as sent (by either path): a memory hit, its bytes, its status."""
    metrics.hit["memory"].inc()
    metrics.bytes_out.inc(kept.length)
    t.tier, t.status, t.sent = "memory", 200, kept.length


__all__ = [
    "AT_ONCE",
    "Answer",
    "AnswerKey",
    "AnswerNow",
    "AtOnce",
    "RecentAnswers",
    "answer_key",
    "capturing",
    "served",
    "wire",
]
