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


BASE = "https://media.shop.example/uploads/"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # imgproxy's default type is fit, never enlarging: c_limit, as rs:fit
        ("w:300", "c_limit,w_300/-/a.jpg"),
        ("rs:fit:300:200:1", "c_fit,w_300,h_200/-/a.jpg"),  # its enlarge argument
        ("w:300/h:200/g:sm", "c_limit,w_300,h_200/-/a.jpg"),  # gravity only places a fill
        ("rs:fill:300:200/g:no:0:0", "c_fill,w_300,h_200,g_north/-/a.jpg"),
        ("bl:0/sh:0/w:10", "c_limit,w_10/-/a.jpg"),  # no effect
        ("rt:fit", "-/a.jpg"),  # a type without a size does nothing
        # a quality on PNG or GIF output is ignored there; our q_ would make a palette
        ("rs:fill:30:20/q:80/plain/{base}b.png", "c_fill,w_30,h_20/-/b.png"),
        ("rs:fill:30:20/q:80/f:png", "c_fill,w_30,h_20/-/a.jpg@png"),
        ("rs:fill:30:20/q:80/plain/{base}b.png@webp", "c_fill,w_30,h_20,q_80/-/b.png@webp"),
        ("w:10/plain/{base}icon%402x.png@webp", "c_limit,w_10/-/icon@2x.png@webp"),  # %40: @
        ("w:10/{b64_split}.png", "c_limit,w_10/-/x.jpg@png"),  # base64 split by /
    ],
)
def test_imgproxy_options_translate_to_the_same_picture(old: str, new: str) -> None:
    encoded = b64(BASE + "x.jpg")
    line = "/S/" + old.format(base=BASE, b64_split=encoded[:9] + "/" + encoded[9:])
    if "/plain/" not in line and "{b64_split}" not in old:
        line += f"/plain/{BASE}a.jpg"
    ((_, url, reason),) = rewrite([line], source="shop", base_url=BASE, key=b"k")
    assert reason is None and url is not None, reason
    assert url.split("?")[0] == f"/r/shop/{new}"


@pytest.mark.parametrize(
    ("old", "reason"),
    [
        ("rs:auto:300:200", "resizing type"),  # fill or fit by the source's orientation
        ("rs:fit:300:200:1:1", "extend"),
        ("rs:force:300:0", "keeps the source's side"),
        ("rs:fill:300:200/g:no:0:100", "gravity offset"),
        ("bl:inf", "a number"),  # it crashed the whole run
        ("sh:1e400", "a number"),
        ("w:30/plain/{base}thumb.php%3Fid%3D5", "query string"),  # two ids were one object
        ("w:30/{b64_slash}", "encoded '/'"),
    ],
)
def test_imgproxy_options_without_an_equivalent_are_reported(old: str, reason: str) -> None:
    line = "/S/" + old.format(base=BASE, b64_slash=b64(BASE + "a%2Fb.jpg"))
    if "/plain/" not in line and "{b64_slash}" not in old:
        line += f"/plain/{BASE}a.jpg"
    ((_, url, said),) = rewrite([line], source="shop", base_url=BASE, key=b"k")
    assert url is None and said is not None and reason in said, said


def test_thumbor_smart_with_fit_in_and_quality_on_png() -> None:
    lines = [
        "/unsafe/fit-in/300x200/smart/media.shop.example/uploads/a.jpg",
        "/unsafe/300x200/filters:quality(80)/media.shop.example/uploads/a.png",
    ]
    done = rewrite(lines, source="shop", base_url=BASE, key=b"k", dialect="thumbor")
    paths = [url.split("?")[0] for _, url, _ in done if url]
    assert paths == ["/r/shop/c_limit,w_300,h_200/-/a.jpg", "/r/shop/c_fill,w_300,h_200/-/a.png"]
