"""The development secrets file (``SECRETS_FILE``, ``./data/secrets.json``): without
``JWT_SECRET`` or ``URL_SIGNING_KEYS`` outside production, ``imgorigin serve`` makes one
(mode 0600, in a 0700 folder) on first use and every process after it reads the same one.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path

from origin.environ import SettingsError
from origin.permissions import make_private_dirs


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def development_secrets(path: Path, announce: Callable[[str], None]) -> dict[str, str]:
    """Read the development secrets file, creating it (mode 0600) on first use.

    Creation uses O_EXCL, so two processes starting at once agree on one set of secrets.
    """
    values = {
        "jwt_secret": secrets.token_urlsafe(48),
        "url_signing_keys": f"dev:{secrets.token_urlsafe(32)}",
    }
    try:
        make_private_dirs(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_secrets(path)
    except OSError as exc:
        raise SettingsError("SECRETS_FILE", f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(values, file)
        file.flush()
        os.fsync(file.fileno())
    announce(f"imgorigin: generated development secrets into {path} (mode 0600)")
    return values


def existing_development_secrets(path: Path) -> dict[str, str]:
    """The development secrets file's values, never creating it: a command that only reads
    (``imgorigin sign``) run from another folder must not mint secrets nobody else uses."""
    if not path.exists():
        raise SettingsError(
            "SECRETS_FILE",
            f"no development secrets at {path.absolute()}; run from the folder `make run` "
            "serves from, or set SECRETS_FILE (or URL_SIGNING_KEYS and JWT_SECRET)",
        )
    return read_secrets(path)


def read_secrets(path: Path) -> dict[str, str]:
    for _ in range(50):  # another process may be between creating and writing the file
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict) and all(
            isinstance(data.get(k), str) for k in ("jwt_secret", "url_signing_keys")
        ):
            return {k: data[k] for k in ("jwt_secret", "url_signing_keys")}
        time.sleep(0.02)
    raise SettingsError("SECRETS_FILE", f"{path} is not a valid secrets file")
