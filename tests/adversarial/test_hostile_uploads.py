"""Hostile files through the real upload route: each gets the contract's 4xx quickly and
leaves no row, no object, no temporary file, and the usage unchanged."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.admin_api.conftest import Api, assert_error
from tests.admin_api.test_images import object_keys, usage
from tests.origin import test_probe as make

HOSTILE: dict[str, tuple[Callable[[], bytes], int, str]] = {
    "pixel flood 100000x100000": (
        lambda: make.png_header_only(100_000, 100_000),
        422,
        "invalid_image",
    ),
    "deflate bomb 20000x20000": (make.png_deflate_bomb, 422, "invalid_image"),
    "zTXt metadata bomb": (make.ztxt_bomb, 422, "invalid_image"),
    "iCCP metadata bomb": (make.iccp_bomb, 422, "invalid_image"),
    "GIF 65535x65535 screen": (lambda: make.gif_screen(65535, 65535), 422, "invalid_image"),
    "GIF 5000 frames": (lambda: make.gif_with_frames(5000), 422, "invalid_image"),
    "huge progressive JPEG header": (lambda: make.jpeg_sized(60000, 60000), 422, "invalid_image"),
    "truncated JPEG": (
        lambda: make.sample("jpeg")[: len(make.sample("jpeg")) // 2],
        422,
        "invalid_image",
    ),
    "truncated PNG": (
        lambda: make.sample("png")[: len(make.sample("png")) // 2],
        422,
        "invalid_image",
    ),
    "truncated WebP": (
        lambda: make.sample("webp")[: len(make.sample("webp")) // 2],
        422,
        "invalid_image",
    ),
    "truncated AVIF": (
        lambda: make.sample("avif")[: len(make.sample("avif")) // 2],
        422,
        "invalid_image",
    ),
    "JPEG magic + PHP": (
        lambda: b"\xff\xd8\xff\xe0" + b"<?php system($_GET['c']); ?>" * 20,
        422,
        "invalid_image",
    ),
    "GIF + JavaScript": (
        lambda: b"GIF89a/*" + b"*/=1;alert(document.domain);//" * 20,
        422,
        "invalid_image",
    ),
    "SVG with an entity (XXE)": (  # a scripted SVG is drawn inert: tests/origin/test_svg.py
        lambda: (
            b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"><text>&x;</text></svg>'
        ),
        422,
        "invalid_image",
    ),
    "MVG script": (
        lambda: (
            b"push graphic-context\nviewbox 0 0 640 480\nfill 'url(https://x/y.jpg)'\npop graphic-context\n"
        ),
        415,
        "unsupported_media_type",
    ),
    "PDF": (
        lambda: b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF",
        415,
        "unsupported_media_type",
    ),
    "TIFF": (make.tiff, 415, "unsupported_media_type"),
    "BMP": (make.bmp, 415, "unsupported_media_type"),
    "HEIC": (make.heic_ftyp, 415, "unsupported_media_type"),
    "three bytes": (lambda: b"abc", 415, "unsupported_media_type"),
    "bare JPEG magic": (lambda: b"\xff\xd8\xff", 422, "invalid_image"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_hostile_file_is_refused_and_leaves_nothing(local_api: Api, name: str) -> None:
    build, status, code = HOSTILE[name]
    data = build()
    _, headers = await local_api.user()
    started = time.perf_counter()
    answer = await local_api.upload(headers, data, filename="innocent.jpg")
    elapsed = time.perf_counter() - started
    assert_error(answer, status, code)
    assert elapsed < 3.0, f"{name} took {elapsed:.2f} s"
    assert await object_keys(local_api) == []
    assert await usage(local_api, headers) == (0, 0)
    storage_root = Path(local_api.services.settings.storage_path)
    assert list((storage_root / ".tmp").glob("*")) == []
    assert (await local_api.http.get("/api/images", headers=headers)).json()["total"] == 0


async def test_empty_file_is_refused(local_api: Api) -> None:
    _, headers = await local_api.user()
    assert_error(await local_api.upload(headers, b""), 400)
    assert await object_keys(local_api) == []
