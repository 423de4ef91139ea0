"""Cache tags (origin.cache_tags): keyed, stable, one per image and per owner."""

from __future__ import annotations

import hashlib
import hmac

from origin.cache_tags import CacheTags, tag, tag_key


def test_tags_are_keyed_hashes_of_the_ids() -> None:
    key = tag_key("a-jwt-secret")
    assert key == hmac.new(b"a-jwt-secret", b"imgorigin cache tags", hashlib.sha256).digest()
    image = tag(key, "image", "a" * 32)
    expected = hmac.new(key, b"image:" + b"a" * 32, hashlib.sha256).hexdigest()[:20]
    assert image == "i" + expected
    assert tag(key, "user", "a" * 32) != image and tag(key, "user", "a" * 32)[0] == "u"
    assert tag(tag_key("another secret"), "image", "a" * 32) != image
    headers = dict(CacheTags(key).headers("a" * 32, "b" * 32))
    first, second = headers[b"cache-tag"].decode().split(",")
    assert (first, second) == (image, tag(key, "user", "b" * 32))
    assert headers[b"surrogate-key"] == f"{first} {second}".encode()
    assert headers[b"edge-cache-tag"] == headers[b"cache-tag"]
