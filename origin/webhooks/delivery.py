"""Delivering one event to one endpoint: a ``webhook`` job (origin.jobs.runner).

Each try signs the stored body afresh (a new ``webhook-timestamp``, the same ``webhook-id``)
with the endpoint's secret — and its previous one while a rotation overlaps — and POSTs it
through the guarded fetcher (origin.fetch ``post``): the address is checked at every try,
never only at registration, and a redirect is an answer like any other, never followed. A
2xx is delivered; anything else is retried on ``WEBHOOK_RETRY_SCHEDULE`` (27 hours by
default) and then failed. The delivery log keeps the last HTTP status, or none: whether no
answer came because the port was closed, the host never answered or the guard refused the
address is not told apart, so the log is no port scanner.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from yarl import URL

from origin.errors import OriginError
from origin.fetch import Limits, Policy, post
from origin.jobs.runner import Failure, Retry
from origin.settings import Settings
from origin.settings_groups import Background
from origin.store.database import Database, Transaction
from origin.store.queue import Job
from origin.store.webhooks import record_attempt, to_send
from origin.webhooks import signing
from origin.webhooks.events import DELIVERED, FAILED, PENDING

ANSWER_BYTES = 64 * 1024  # of an endpoint's answer, read and dropped
NO_RESPONSE = "no_response"


def endpoint_url(url: str) -> str:
    """The form an endpoint's URL is kept and compared in, so that one URL is one endpoint
    (an event goes to a URL once): scheme and host in lower case, the host in IDNA, a default
    port, an empty query and the fragment dropped, dot-segments resolved, an empty path
    ``/``. A string that is no URL is left as it is, for the policy to refuse."""
    try:
        parsed = URL(url.strip())
    except ValueError:
        return url.strip()
    if not parsed.is_absolute():
        return url.strip()
    kept = URL.build(
        scheme=parsed.scheme,
        authority=parsed.raw_authority,
        path=parsed.raw_path or "/",
        query_string=parsed.raw_query_string,
        encoded=True,
    )
    return str(kept)


def webhook_policy(settings: Settings) -> Policy:
    """Where webhooks may go: any public host on ``WEBHOOK_PORTS`` (loopback only through
    the tests' switch)."""
    return Policy.configured(
        ports=settings.background.webhook_ports,
        private_hosts=settings.fetch_private_hosts,
        allow_loopback=settings.fetch_allow_loopback_for_tests,
    )


class NotDelivered(Retry):
    def __init__(self, status: int | None) -> None:
        code = f"http_{status}" if status else NO_RESPONSE
        super().__init__(code, f"the endpoint answered HTTP {status}" if status else "no answer")


@dataclass(frozen=True)
class Attempt:
    delivery_id: str
    status: int | None  # None: not sent (the delivery or its endpoint is gone, or done)


class WebhookDeliveries:
    """The handler of ``webhook`` jobs."""

    def __init__(self, db: Database, settings: Settings, policy: Policy) -> None:
        self.db = db
        self.background: Background = settings.background
        self.schedule = self.background.webhook_retry_schedule
        self.policy = policy
        timeout = self.background.webhook_timeout_seconds
        self.limits = Limits(
            connect_timeout=min(timeout, settings.fetch_connect_timeout_seconds),
            total_timeout=timeout,
            max_bytes=ANSWER_BYTES,
            max_redirects=0,
        )

    async def run(self, job: Job) -> Attempt:
        delivery_id = job.payload["delivery"]
        sending = await to_send(self.db, delivery_id)
        if sending is None:
            return Attempt(delivery_id, None)
        head = signing.headers(sending.secrets, delivery_id, int(time.time()), sending.body)
        head["content-type"] = "application/json"
        try:
            status = await post(sending.url, self.policy, self.limits, sending.body, head)
        except OriginError:  # refused, unreachable, timed out: told apart to no one
            raise NotDelivered(None) from None
        if not 200 <= status < 300:
            raise NotDelivered(status)
        return Attempt(delivery_id, status)

    async def done(self, conn: Transaction, job: Job, attempt: Attempt) -> None:
        if attempt.status is None:
            return
        await self._record(
            conn,
            job,
            state=DELIVERED,
            last_status=attempt.status,
            last_error=None,
            next_attempt_at=None,
        )

    async def retrying(self, conn: Transaction, job: Job, failure: Failure, due: datetime) -> None:
        await self._record(conn, job, state=PENDING, **self._outcome(failure), next_attempt_at=due)

    async def failed(self, conn: Transaction, job: Job, failure: Failure) -> None:
        await self._record(conn, job, state=FAILED, **self._outcome(failure), next_attempt_at=None)

    @staticmethod
    def _outcome(failure: Failure) -> dict[str, object]:
        status = int(failure.code[5:]) if failure.code.startswith("http_") else None
        return {"last_status": status, "last_error": "http_status" if status else NO_RESPONSE}

    async def _record(self, conn: Transaction, job: Job, **values: object) -> None:
        await record_attempt(conn, job.payload["delivery"], **values)
