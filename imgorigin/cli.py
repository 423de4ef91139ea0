"""The ``imgorigin`` command: serve, worker, migrate, sign, rewrite-urls, gc.

Settings are read and validated before anything starts; a bad value prints one line naming
the variable and exits with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import math
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgorigin.orphans import (
    DEFAULT_MIN_AGE_SECONDS,
    Collected,
    collect_garbage,
    remove_dangling_rows,
)
from imgorigin.protocol import Deadlines
from imgorigin.rewrite import rewrite as rewrite_urls
from imgorigin.supervisor import AFFINITIES, GRACEFUL_SECONDS, Listen, Supervisor
from imgorigin.worker import run_worker
from origin.digits import plain_int
from origin.environ import SettingsError
from origin.errors import Unavailable
from origin.permissions import make_private_dirs
from origin.services import limits_of, open_services
from origin.settings import Settings
from origin.signing import MAX_EXPIRES_IN, sign_policy, sign_url
from origin.store.database import Database, failure_line
from origin.store.migrations import migrate, unapplied


def _affinity(value: str) -> str:
    if value not in AFFINITIES:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(AFFINITIES)}, not {value!r}")
    return value


def _port(value: str) -> int:
    number = _whole(value)
    if number > 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port, 0 to 65535, not {value!r}")
    return number


def _workers(value: str) -> int:
    number = _whole(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value!r}")
    return number


def _from_environ(name: str, check: Any) -> Any:
    """An option whose default is the environment variable ``name``: its error names both."""

    def checked(value: str) -> Any:
        try:
            return check(value)
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"{exc} (the option or {name})") from None

    checked.__name__ = check.__name__
    return checked


def _expires_in(value: str) -> int:
    number = _whole(value)
    if not 1 <= number <= MAX_EXPIRES_IN:
        raise argparse.ArgumentTypeError(f"must be 1 to {MAX_EXPIRES_IN} seconds, not {value!r}")
    return number


def _whole(value: str) -> int:
    if not plain_int(value):
        raise argparse.ArgumentTypeError(f"must be a whole number, not {value!r}")
    return int(value)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imgorigin", description="URL-signed image origin")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the origin and the admin API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=8000)
    serve.add_argument(
        "--workers",
        type=_from_environ("WORKERS", _workers),
        default=os.environ.get("WORKERS", "1") or "1",
    )
    serve.add_argument("--app", choices=("all", "origin", "admin"), default="all")
    serve.add_argument(
        "--cpu-affinity",
        # argparse applies it to a string default too: WORKER_CPU_AFFINITY
        type=_from_environ("WORKER_CPU_AFFINITY", _affinity),
        default=os.environ.get("WORKER_CPU_AFFINITY", "off") or "off",
        help="auto: with one worker per CPU, each on its own CPU (imgorigin.supervisor); off",
    )

    commands.add_parser(
        "worker", help="run background jobs (eager derivatives, webhooks) without serving HTTP"
    )
    commands.add_parser("migrate", help="apply pending database migrations")

    sign = commands.add_parser("sign", help="print PATH with its signed query string")
    sign.add_argument("path", metavar="PATH")
    sign.add_argument("--expires-in", type=_expires_in, metavar="SECONDS")
    sign.add_argument(
        "--policy",
        metavar="POLICY",
        help="sign PATH as a policy template (w_*, dpr_*, .*), e.g. w_320to1280by160.f_webp-jpg",
    )

    rewrite = commands.add_parser(
        "rewrite-urls",
        help="read imgproxy or thumbor URLs on stdin, print signed /r/ URLs of a source",
    )
    rewrite.add_argument("--source", required=True, metavar="NAME")
    rewrite.add_argument(
        "--base-url",
        metavar="URL",
        help="where the source's objects live in the old URLs (default: the source's base_url)",
    )
    rewrite.add_argument(
        "--from", dest="dialect", choices=("imgproxy", "thumbor"), default="imgproxy"
    )
    rewrite.add_argument(
        "--origin", default="", metavar="URL", help="prefix, e.g. https://img.example"
    )
    gc = commands.add_parser("gc", help="remove stored objects that no row refers to")
    gc.add_argument(
        "--min-age",
        type=_seconds,
        default=DEFAULT_MIN_AGE_SECONDS,
        metavar="SECONDS",
        help="leave objects younger than this alone (uploads in flight); default %(default)s",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        # `sign`, `rewrite-urls` and `gc` work on an existing deployment: run from another
        # folder they must not mint a secrets file there (`serve` and `migrate` start one).
        settings = Settings.from_environ(
            os.environ, generate=args.command not in ("sign", "gc", "rewrite-urls")
        )
    except SettingsError as exc:
        print(f"imgorigin: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        return _run(settings, args)
    except Exception as exc:  # the database or a folder it cannot use: one line, no traceback
        line = failure_line(exc)
        if line is None:
            raise
        print(f"imgorigin: {args.command}: {line}", file=sys.stderr)
        return 1


def _run(settings: Settings, args: argparse.Namespace) -> int:
    if args.command in ("serve", "worker", "gc") and settings.storage_type == "local":
        make_private_dirs(Path(settings.storage_path))  # an unusable STORAGE_PATH, said now
    if args.command in ("serve", "worker", "gc"):
        missing = asyncio.run(_unapplied(settings))
        if missing:
            print(
                f"imgorigin: the database lacks migration(s) {', '.join(map(str, missing))} of "
                "this release: run `imgorigin migrate` first",
                file=sys.stderr,
            )
            return 2
    if args.command == "serve":
        return _serve(settings, args)
    if args.command == "worker":
        asyncio.run(run_worker(settings))
        return 0
    if args.command == "migrate":
        applied = asyncio.run(_migrate(settings))
        print(
            f"migrations applied: {', '.join(map(str, applied))}"
            if applied
            else "schema is up to date"
        )
        return 0
    if args.command == "sign":
        if not args.path.startswith("/"):
            print("imgorigin: PATH must start with /", file=sys.stderr)
            return 2
        return _sign(settings, args)
    if args.command == "rewrite-urls":
        return _rewrite(settings, args)
    if args.command == "gc":
        try:
            collected, rows = asyncio.run(_gc(settings, args.min_age))
        except Unavailable as exc:
            print(f"imgorigin: {exc.message}; nothing more was removed", file=sys.stderr)
            return 1
        for name in collected.removed:
            print(f"removed {name}")
        print(f"{len(collected.removed)} orphan object(s) removed")
        print(f"{rows} derivative row(s) without their object removed")
        if collected.foreign:
            print(f"{collected.foreign} object(s) outside imgorigin's layout left alone")
        return 0
    return 2


def _sign(settings: Settings, args: argparse.Namespace) -> int:
    key = settings.url_signing_keys[0].secret
    if args.policy is None:
        print(sign_url(args.path, key, expires_in=args.expires_in))
        return 0
    try:
        print(sign_policy(args.path, key, args.policy, expires_in=args.expires_in))
    except ValueError as exc:
        print(f"imgorigin: {exc}", file=sys.stderr)
        return 2
    return 0


def _rewrite(settings: Settings, args: argparse.Namespace) -> int:
    """One signed URL per translated line on stdout; each other line on stderr with why."""
    source = settings.sources.get(args.source)
    if source is None:
        known = ", ".join(sorted(settings.sources)) or "none: set SOURCES_FILE"
        print(f"imgorigin: no source named {args.source!r} (sources: {known})", file=sys.stderr)
        return 2
    base_url = args.base_url or source.base_url
    if base_url is None:
        print("imgorigin: --base-url is needed (the source has no base_url)", file=sys.stderr)
        return 2
    failed = 0
    key = settings.url_signing_keys[0].secret
    for line, url, reason in rewrite_urls(
        sys.stdin,
        source=args.source,
        base_url=base_url,
        key=key,
        dialect=args.dialect,
        config=source,
        presets=settings.presets,
        limits=limits_of(settings),
    ):
        if url is None:
            failed += 1
            print(f"imgorigin: cannot rewrite {line}: {reason}", file=sys.stderr)
        else:
            print(args.origin.rstrip("/") + url)
    return 1 if failed else 0


async def _unapplied(settings: Settings) -> list[int]:
    """The migrations the database lacks; none when it cannot be reached now (the service
    starts, and ``/readyz`` says 503 until it can)."""
    db = Database(settings.database_url)
    try:
        return await unapplied(db)
    except Exception:
        return []
    finally:
        await db.close()


async def _migrate(settings: Settings) -> list[int]:
    db = Database(settings.database_url)
    try:
        return await migrate(db)
    finally:
        await db.close()


def _seconds(text: str) -> float:
    """A finite, non-negative number of seconds (argparse's type for ``--min-age``)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, 0 or more, not {text!r}")
    return value


async def _gc(settings: Settings, min_age: float) -> tuple[Collected, int]:
    async with open_services(settings) as services:
        removed = await collect_garbage(services, min_age=min_age)
        return removed, await remove_dangling_rows(services)


@dataclass(frozen=True)
class Serving:
    """What every worker of ``imgorigin serve`` runs with (picklable: it travels to the
    workers ``imgorigin.supervisor`` spawns)."""

    app: str
    deadlines: Deadlines
    forwarded_allow_ips: str


def _config(serving: Serving, **where: Any) -> Any:
    import uvicorn

    from imgorigin.protocol import guarded_protocol

    os.environ["IMGORIGIN_APP"] = serving.app
    return uvicorn.Config(
        "imgorigin.app:app_from_environ",
        factory=True,
        loop="uvloop",
        # httptools, with header and body deadlines and MAX_CONNECTIONS (imgorigin/protocol.py)
        http=guarded_protocol(serving.deadlines),
        proxy_headers=True,
        forwarded_allow_ips=serving.forwarded_allow_ips,
        server_header=False,
        timeout_graceful_shutdown=int(GRACEFUL_SECONDS),
        log_level="info",
        access_log=False,  # the app writes one structured line per request (imgorigin.access)
        **where,
    )


def serve_on(serving: Serving, sock: socket.socket) -> None:
    """A worker of several: uvicorn on the socket the supervisor's worker opened."""
    import uvicorn

    uvicorn.Server(_config(serving)).run(sockets=[sock])


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    serving = Serving(args.app, Deadlines.of(settings), ",".join(settings.forwarded_allow_ips))
    if args.workers <= 1:
        uvicorn.Server(_config(serving, host=args.host, port=args.port)).run()
        return 0
    supervisor = Supervisor(
        Listen(args.host, args.port),
        args.workers,
        functools.partial(serve_on, serving),
        affinity=args.cpu_affinity,
    )
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
