"""Live ``imgorigin serve`` processes for the fault and load tests: an environment in a temp
folder, users and images made through the real upload route, a real photograph."""

from __future__ import annotations

import os
import secrets
import subprocess
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import httpx
import pyvips

from admin_api.auth import issue_access_token
from origin.services import open_services
from origin.settings import Settings
from tests.conftest import IMGORIGIN, OPERATOR_SECRET

JWT_SECRET = "adversarial-jwt-secret-" + "a" * 24


def live_env(folder: Path, **overrides: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": f"sqlite:///{folder / 'meta.db'}",
        "STORAGE_PATH": str(folder / "storage"),
        "SECRETS_FILE": str(folder / "secrets.json"),
        "JWT_SECRET": JWT_SECRET,
        "URL_SIGNING_KEYS": f"op1:{OPERATOR_SECRET}",
        "RATE_LIMIT_PER_MINUTE": "100000",
        "AUTH_RATE_LIMIT_PER_MINUTE": "100000",
        **overrides,
    }
    run_cli(env, "migrate")
    return env


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [IMGORIGIN, *args],
        env={"PATH": os.environ["PATH"], **env},
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def new_user(env: dict[str, str]) -> tuple[str, dict[str, str]]:
    """A user made through the real repository (no bcrypt: it never logs in)."""
    user_id = secrets.token_hex(16)
    async with open_services(Settings.from_environ(env)) as services:
        await services.users.create(user_id, f"{user_id[:8]}@example.com", "x", datetime.now(UTC))
    token = issue_access_token(user_id, JWT_SECRET, 3600).token
    return user_id, {"Authorization": f"Bearer {token}"}


def upload(url: str, headers: dict[str, str], data: bytes, name: str = "photo.jpg") -> str:
    answer = httpx.post(
        f"{url}/api/images",
        headers=headers,
        files={"file": (name, data, "application/octet-stream")},
        timeout=60,
    )
    assert answer.status_code == 201, answer.text
    image_id: str = answer.json()["id"]
    return image_id


@cache
def photo(width: int = 2000, height: int = 1500) -> bytes:
    """A real photograph (scikit-image's astronaut) scaled up, JPEG q90."""
    import skimage

    source = Path(os.path.dirname(skimage.__file__)) / "data" / "astronaut.png"
    image = pyvips.Image.new_from_file(str(source))
    image = image.resize(width / image.width, vscale=height / image.height)
    data: bytes = image.write_to_buffer(".jpg", Q=90)
    return data


def noise_png(width: int, height: int, seed: int = 0) -> bytes:
    """An incompressible PNG (random pixels), about width × height × 3 bytes."""
    image = pyvips.Image.gaussnoise(width, height, mean=128, sigma=80, seed=seed)
    image = image.bandjoin([image.rot180(), image.flipver()]).cast("uchar")
    data: bytes = image.copy(interpretation="srgb").write_to_buffer(".png", compression=1)
    return data
