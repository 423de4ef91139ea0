"""``SOURCES_FILE`` is validated at start-up: each bad entry is one line naming the file's
variable, the source and the field; the process does not start."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from origin.settings import Settings, SettingsError
from tests.origin.delivery.conftest import encoded


def settings_with(tmp_path: Path, make: Callable[..., Settings], config: Any) -> Settings:
    path = tmp_path / "sources.json"
    path.write_text(json.dumps(config) if not isinstance(config, str) else config)
    return make(SOURCES_FILE=str(path))


def test_a_good_file(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    fallback = tmp_path / "missing.png"
    fallback.write_bytes(encoded("png", 10, 10))
    settings = settings_with(
        tmp_path,
        make_settings,
        {
            "shop": {"type": "http", "base_url": "https://media.shop.example/uploads"},
            "cdn": {"type": "http", "hosts": ["img.example.com", "*.cdn.example"], "ttl": 60},
            "bucket": {
                "type": "s3",
                "bucket": "catalogue",
                "prefix": "products",
                "fallback": str(fallback),
            },
        },
    )
    shop, cdn, bucket = (settings.sources[n] for n in ("shop", "cdn", "bucket"))
    assert shop.base_url == "https://media.shop.example/uploads/"
    assert (shop.max_age, shop.ttl, shop.missing_ttl) == (86_400, 3_600, 60)
    assert cdn.hosts == ("img.example.com", "*.cdn.example") and cdn.ttl == 60
    assert bucket.prefix == "products/" and bucket.fallback is not None
    assert bucket.fallback.format == "png"


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ("not json", "not valid JSON"),
        ([], "expected a JSON object"),
        ({"Shop": {"type": "http", "base_url": "https://a.example/"}}, "source 'Shop': names"),
        ({"shop": {"type": "ftp"}}, '"type" must be'),
        ({"shop": {"type": "http"}}, 'exactly one of "base_url" and "hosts"'),
        ({"shop": {"type": "http", "base_url": "ftp://a.example/"}}, '"base_url" must be'),
        ({"shop": {"type": "http", "base_url": "https://a.example/?x=1"}}, "no query"),
        ({"shop": {"type": "http", "hosts": ["bad host"]}}, "is not a host name"),
        ({"shop": {"type": "http", "hosts": []}}, '"hosts" must be a list'),
        ({"shop": {"type": "http", "base_url": "https://a.example/", "max_age": -1}}, '"max_age"'),
        ({"shop": {"type": "http", "base_url": "https://a.example/", "ttl": 1.5}}, "whole number"),
        (
            {"shop": {"type": "http", "base_url": "https://a.example/", "bucket": "x"}},
            "unknown field 'bucket'",
        ),
        (
            {
                "shop": {
                    "type": "http",
                    "base_url": "https://a.example/",
                    "headers": {"X-Bad": "a\r\nInjected: 1"},
                }
            },
            "one line of text",
        ),
        (
            {"shop": {"type": "http", "base_url": "https://a.example/", "headers": {"Host": "x"}}},
            "the fetcher's own",
        ),
        (
            {"shop": {"type": "http", "base_url": "https://a.example/", "scheme": "http"}},
            '"scheme" is for a source of "hosts"',
        ),
        ({"shop": {"type": "s3"}}, '"bucket" must be'),
        ({"shop": {"type": "s3", "bucket": "b", "prefix": "/abs"}}, '"prefix"'),
        ({"shop": {"type": "s3", "bucket": "b", "fallback": "/no/such/file.png"}}, "cannot read"),
    ],
)
def test_each_bad_entry_is_one_clear_line(
    tmp_path: Path, make_settings: Callable[..., Settings], config: Any, says: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        settings_with(tmp_path, make_settings, config)
    message = str(caught.value)
    assert message.startswith("SOURCES_FILE: ") and says in message and "\n" not in message


def test_every_bad_entry_is_named(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    config = {
        "a": {"type": "http"},
        "ok": {"type": "http", "base_url": "https://a.example/"},
        "b": {"type": "s3"},
        "c": {"type": "http", "base_url": "https://a.example/", "headers": {"User-Agent": "x"}},
    }
    with pytest.raises(SettingsError) as caught:
        settings_with(tmp_path, make_settings, config)
    message = str(caught.value)
    assert "source 'a': " in message and "source 'b': " in message and "source 'c': " in message
    assert "source 'ok'" not in message and "\n" not in message


def test_a_fallback_must_be_an_image(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    text = tmp_path / "fallback.png"
    text.write_text("not an image")
    with pytest.raises(SettingsError, match="is not a JPEG, PNG"):
        settings_with(
            tmp_path, make_settings, {"s": {"type": "s3", "bucket": "b", "fallback": str(text)}}
        )


def test_a_missing_file_is_named(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(SettingsError, match=r"SOURCES_FILE: cannot read /no/such/sources\.json"):
        make_settings(SOURCES_FILE="/no/such/sources.json")
