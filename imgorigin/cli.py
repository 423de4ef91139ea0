"""The ``imgorigin`` command: serve, migrate, sign, gc.

Settings are read and validated before anything starts; a bad value prints one line naming
the variable and exits with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from imgorigin.orphans import DEFAULT_MIN_AGE_SECONDS, collect_garbage
from origin.services import open_services
from origin.settings import Settings, SettingsError
from origin.signing import sign_policy, sign_url
from origin.store.database import Database
from origin.store.migrations import migrate


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imgorigin", description="URL-signed image origin")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the origin and the admin API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", "1") or 1))
    serve.add_argument("--app", choices=("all", "origin", "admin"), default="all")

    commands.add_parser("migrate", help="apply pending database migrations")

    sign = commands.add_parser("sign", help="print PATH with its signed query string")
    sign.add_argument("path", metavar="PATH")
    sign.add_argument("--expires-in", type=int, metavar="SECONDS")
    sign.add_argument(
        "--policy",
        metavar="POLICY",
        help="sign PATH as a policy template (w_*, dpr_*, .*), e.g. w_320to1280by160.f_webp-jpg",
    )

    gc = commands.add_parser("gc", help="remove stored objects that no row refers to")
    gc.add_argument(
        "--min-age",
        type=float,
        default=DEFAULT_MIN_AGE_SECONDS,
        metavar="SECONDS",
        help="leave objects younger than this alone (uploads in flight); default %(default)s",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        # `sign` and `gc` work on an existing deployment: run from another folder they must
        # not mint a secrets file there (`serve` and `migrate` start one).
        settings = Settings.from_environ(os.environ, generate=args.command not in ("sign", "gc"))
    except SettingsError as exc:
        print(f"imgorigin: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return _serve(settings, args)
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
    if args.command == "gc":
        removed = asyncio.run(_gc(settings, args.min_age))
        for name in removed:
            print(f"removed {name}")
        print(f"{len(removed)} orphan object(s) removed")
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


async def _migrate(settings: Settings) -> list[int]:
    db = Database(settings.database_url)
    try:
        return await migrate(db)
    finally:
        await db.close()


async def _gc(settings: Settings, min_age: float) -> list[str]:
    async with open_services(settings) as services:
        return await collect_garbage(services, min_age=min_age)


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from imgorigin.protocol import Deadlines, guarded_protocol

    os.environ["IMGORIGIN_APP"] = args.app
    uvicorn.run(
        "imgorigin.app:app_from_environ",
        factory=True,
        host=args.host,
        port=args.port,
        workers=max(1, args.workers),
        loop="uvloop",
        # httptools, with header and body deadlines and MAX_CONNECTIONS (imgorigin/protocol.py)
        http=guarded_protocol(Deadlines.of(settings)),
        proxy_headers=True,
        forwarded_allow_ips=",".join(settings.forwarded_allow_ips),
        server_header=False,
        timeout_graceful_shutdown=30,
        log_level="info",
        access_log=False,  # the app writes one structured line per request (imgorigin.access)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
