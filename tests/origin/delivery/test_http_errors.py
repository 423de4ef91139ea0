"""origin.http's error answers, on a tiny app: a client gone mid-body is no server error."""

from __future__ import annotations

import json
import logging

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message

from origin.errors import BadRequest
from origin.http import EXCEPTION_HANDLERS, error_response


async def read_all(request: Request) -> Response:
    await request.body()
    return Response(b"read")


APP = Starlette(
    routes=[Route("/up", read_all, methods=["POST"])], exception_handlers=EXCEPTION_HANDLERS
)


async def call(messages: list[Message]) -> list[Message]:
    sent: list[Message] = []
    inbox = iter(messages)

    async def receive() -> Message:
        return next(inbox)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/up",
        "raw_path": b"/up",
        "query_string": b"",
        "headers": [(b"content-length", b"100")],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1),
        "root_path": "",
        "app": APP,
    }
    await APP(scope, receive, send)
    return sent


async def test_a_client_gone_mid_body_is_logged_quietly(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="imgorigin")
    sent = await call(
        [
            {"type": "http.request", "body": b"x" * 10, "more_body": True},
            {"type": "http.disconnect"},
        ]
    )
    assert sent[0]["status"] == 499
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("client went away" in r.getMessage() for r in caplog.records)


async def test_a_whole_body_is_read() -> None:
    sent = await call([{"type": "http.request", "body": b"x" * 100, "more_body": False}])
    assert sent[0]["status"] == 200


def test_an_error_message_repeating_what_is_not_text_is_still_answered() -> None:
    """A 400 that quotes a client's lone surrogate once failed to encode, as a 500."""
    answer = error_response(BadRequest(f"unknown preset 't_{chr(0xD800)}'"))
    assert answer.status_code == 400 and answer.headers["cache-control"] == "no-store"
    assert json.loads(answer.body) == {
        "error": {"code": "bad_request", "message": "unknown preset 't_\\ud800'"}
    }
