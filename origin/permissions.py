"""File modes for what imgorigin writes: readable by its own user only.

Stored objects, the SQLite database (with its ``-wal`` and ``-shm`` files, which SQLite
creates with the database file's mode) and the development secrets are created 0600 and the
folders imgorigin creates for them 0700. The mode is given at creation (``os.open``,
``os.mkdir``), so a permissive umask cannot widen it; folders and files that already exist
are left as they are.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and every missing parent with mode 0700 (``Path.mkdir(parents=True)``
    gives the parents the default mode instead)."""
    missing: list[Path] = []
    current = path
    while not os.path.isdir(current) and current.parent != current:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            os.mkdir(folder, PRIVATE_DIR)


def create_private_file(path: Path) -> bool:
    """Create ``path`` empty with mode 0600 unless it exists; True when this call made it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return False
    os.close(fd)
    return True
