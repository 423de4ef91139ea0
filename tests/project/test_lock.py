"""requirements.lock is what the Docker image installs: it must make a working app by itself.

The build stage of the Dockerfile installs exactly ``requirements.lock`` (with hashes,
``--no-deps``) and then the project (``--no-deps``). This test does the same in a fresh venv,
from a copy of exactly the files the Dockerfile copies, then imports and builds the app,
migrates, serves ``/readyz`` and runs ``pip check``, so the lock cannot drift from
``pyproject.toml`` again. It needs PyPI (or pip's cache) and takes about a minute.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, stop_group, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
DOCKERFILE = ROOT / "Dockerfile"


def build_stage_copies() -> list[str]:
    """The sources the Dockerfile's build stage copies (``COPY a b ./`` or ``COPY a ./a``)."""
    sources: list[str] = []
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("FROM ") and sources:
            break  # the runtime stage copies from the build stage only
        if line.startswith("COPY ") and "--from" not in line:
            sources.extend(line.split()[1:-1])
    return sources


def normalized(pin: str) -> str:
    """``PyJWT==2.15.1`` and ``pyjwt==2.15.1``, ``typing_extensions`` and ``typing-extensions``
    are the same pin."""
    return re.sub(r"[-_.]+", "-", pin.lower())


def run(args: list[str | Path], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def test_the_dockerfile_copies_the_lock_and_the_project() -> None:
    copied = build_stage_copies()
    assert "requirements.lock" in copied
    assert {"pyproject.toml", "README.md", "origin", "admin_api", "imgorigin"} <= set(copied)
    text = DOCKERFILE.read_text()
    assert "--require-hashes --no-deps -r requirements.lock" in text


@pytest.mark.slow
def test_the_lock_alone_installs_a_working_app(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in build_stage_copies():
        origin = ROOT / name
        if origin.is_dir():
            shutil.copytree(
                origin, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            shutil.copy2(origin, source / name)
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=tmp_path)
    python, bin_dir = venv / "bin" / "python", venv / "bin"
    pip = [python, "-m", "pip", "--disable-pip-version-check"]
    # --no-compile: the .pyc files are the one thing the image has that this check needs not
    run(
        [
            *pip,
            "install",
            "-q",
            "--no-compile",
            "--require-hashes",
            "--no-deps",
            "-r",
            "requirements.lock",
        ],
        source,
    )
    run([*pip, "install", "-q", "--no-compile", "--no-deps", "."], source)

    work = tmp_path / "work"  # an empty folder: nothing importable but the venv's packages
    work.mkdir()
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path)}
    check = (
        "import pyvips, imgorigin.app as a; "
        "print(a.__file__); a.app_from_environ(); print(pyvips.version(0))"
    )
    printed = run([python, "-c", check], work, env).split()
    assert printed[0].startswith(str(venv)) and int(printed[1]) == 8

    run([bin_dir / "imgorigin", "migrate"], work, env)
    port = free_port()
    server = subprocess.Popen(
        [bin_dir / "imgorigin", "serve", "--port", str(port)],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port, timeout=60)
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "storage": "ok"}
    finally:
        stop_group(server)

    assert "No broken requirements found." in run([*pip, "check"], work, env)
    installed = run([*pip, "freeze", "--exclude", "imgorigin"], work, env).split()
    pinned = [
        line.split()[0]
        for line in LOCK.read_text().splitlines()
        if line and not line.startswith(("#", " "))
    ]
    assert sorted(map(normalized, installed)) == sorted(map(normalized, pinned))
