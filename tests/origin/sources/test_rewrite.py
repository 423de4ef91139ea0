"""``imgorigin rewrite-urls``: imgproxy and thumbor URLs become signed ``/r/`` URLs that the
origin answers with the image the old URL described."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest

from imgorigin.rewrite import rewrite
from tests.conftest import IMGORIGIN, OPERATOR_SECRET
from tests.origin.delivery.conftest import decode, encoded
from tests.origin.sources.conftest import Remote


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("dialect", "old", "size", "media"),
    [
        (
            "imgproxy",
            "/SIG/rs:fit:300:200/plain/{base}new%20in/caf%C3%A9.png@webp",
            (267, 200),
            "image/webp",
        ),
        (
            "imgproxy",
            "/insecure/rs:fill:300:200/g:sm/q:80/plain/{base}new%20in/caf%C3%A9.png",
            (300, 200),
            "image/png",
        ),
        ("imgproxy", "/SIG/w:100/{b64}.jpg", (100, 75), "image/jpeg"),
        (
            "imgproxy",
            "/SIG/rs:fit:800:600/f:webp/plain/{base}new%20in/caf%C3%A9.png",
            (400, 300),
            "image/webp",
        ),
        (
            "thumbor",
            "/unsafe/fit-in/300x200/filters:quality(80):format(webp)/{host}new%20in/caf%C3%A9.png",
            (267, 200),
            "image/webp",
        ),
        ("thumbor", "/HMAC=/120x120/smart/{host}new%20in/caf%C3%A9.png", (120, 120), "image/png"),
    ],
)
async def test_rewritten_urls_answer_as_the_old_ones_did(
    remote: Remote, dialect: str, old: str, size: tuple[int, int], media: str
) -> None:
    remote.web.conditional("/media/new%20in/caf%C3%A9.png", encoded("png", 400, 300))
    base = remote.web.url("/media/")
    line = old.format(
        base=base, b64=b64(base + "new in/café.png"), host=base.removeprefix("http://")
    )
    ((_, url, reason),) = rewrite(
        [line],
        source="web",
        base_url=base if dialect == "imgproxy" else "https://" + base[7:],
        key=OPERATOR_SECRET.encode(),
        dialect=dialect,
    )
    assert reason is None and url is not None
    answer = await remote.service.http.get(url)
    assert answer.status_code == 200, (url, answer.text)
    assert answer.headers["content-type"] == media
    image = decode(answer.content)
    assert (image.width, image.height) == size


def test_the_command_prints_what_it_can_and_says_what_it_cannot(tmp_path: Path) -> None:
    lines = "\n".join(
        [
            "/S/rs:fit:300:200/plain/https://media.shop.example/uploads/a.jpg@webp",
            "/S/rs:fit:300:200/plain/https://elsewhere.example/x.jpg",
            "/S/wm:0.5/plain/https://media.shop.example/uploads/a.jpg",
            "",
        ]
    )
    done = subprocess.run(
        [
            IMGORIGIN,
            "rewrite-urls",
            "--source",
            "shop",
            "--origin",
            "https://img.example",
            "--base-url",
            "https://media.shop.example/uploads/",
        ],
        input=lines,
        capture_output=True,
        text=True,
        timeout=60,
        env=rewrite_env(tmp_path),
    )
    assert done.returncode == 1
    (url,) = done.stdout.split()
    assert url.startswith("https://img.example/r/shop/c_limit,w_300,h_200/-/a.jpg@webp?s=")
    assert "not under https://media.shop.example/uploads/" in done.stderr
    assert "option 'wm:0.5'" in done.stderr


def rewrite_env(tmp_path: Path) -> dict[str, str]:
    sources = tmp_path / "sources.json"
    shop = {"type": "http", "base_url": "https://media.shop.example/uploads/"}
    sources.write_text(json.dumps({"shop": shop}))
    return {
        "PATH": os.environ["PATH"],
        "URL_SIGNING_KEYS": f"op:{OPERATOR_SECRET}",
        "JWT_SECRET": "j",
        "SOURCES_FILE": str(sources),
    }


def test_an_unknown_source_is_refused_in_one_line(tmp_path: Path) -> None:
    """It printed signed URLs of a source the origin does not have (each a 404), exit 0."""
    done = subprocess.run(
        [IMGORIGIN, "rewrite-urls", "--source", "shpo", "--base-url", "https://x.example/"],
        input="/S/rs:fit:300:200/plain/https://x.example/a.jpg\n",
        capture_output=True,
        text=True,
        timeout=60,
        env=rewrite_env(tmp_path),
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == "imgorigin: no source named 'shpo' (sources: shop)"
