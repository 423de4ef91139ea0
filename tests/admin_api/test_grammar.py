"""GET /api/grammar: the registry describes itself, publicly and cacheably, and the
OpenAPI document's registry parts come from the same declarations."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from admin_api.openapi import openapi_document
from origin.transforms.effects import AMOUNTS, EFFECTS
from origin.transforms.parse import parse_path
from origin.transforms.query import documented
from origin.transforms.registry import STAGE_TRANSFORMS, TOKENS
from tests.admin_api.conftest import Api


async def test_the_grammar_is_public_and_cacheable(local_api: Api) -> None:
    answer = await local_api.http.get("/api/grammar")
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "public, max-age=86400"
    etag = answer.headers["etag"]
    again = await local_api.http.get("/api/grammar", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    for other in ("*", f'"x", W/{etag}'):  # any representation; a list with a weak match
        assert (
            await local_api.http.get("/api/grammar", headers={"If-None-Match": other})
        ).status_code == 304
    assert (
        await local_api.http.get("/api/grammar", headers={"If-None-Match": '"x"'})
    ).status_code == 200


async def test_every_declaration_is_described(local_api: Api) -> None:
    grammar = (await local_api.http.get("/api/grammar")).json()
    written = [key for key, token in TOKENS.items() if token.argument is not None]
    assert [t["key"] for t in grammar["tokens"]] == written  # the flags: in fl_'s argument
    assert [t["name"] for t in grammar["transforms"]] == [t.name for t in STAGE_TRANSFORMS]
    assert [e["name"] for e in grammar["effects"]] == list(EFFECTS)
    blur = next(e for e in grammar["effects"] if e["name"] == "blur")
    assert blur["amount"] == {"min": 1, "max": 2000, "default": 100, "required": False}
    grayscale = next(e for e in grammar["effects"] if e["name"] == "grayscale")
    assert grayscale["amount"] is None
    crop = next(t for t in grammar["tokens"] if t["key"] == "c")
    assert crop["argument"]["options"] == ["fit", "fill", "limit", "pad", "scale", "crop"]
    assert "needs w_, h_ or ar_" in crop["rules"]
    gravity = next(t for t in grammar["tokens"] if t["key"] == "g")["argument"]
    assert gravity["options"][-3:] == ["auto", "entropy", "face"]
    assert gravity["overlay_options"] == gravity["options"][:-3]  # what an overlay takes
    assert grammar["limits"]["max_output_dimension"] == 8192
    # every effect the grammar lists is one the parser takes
    for effect in grammar["effects"]:
        amount = "" if effect["amount"] is None else f":{effect['amount']['max']}"
        parse_path(f"/i/{'0' * 32}/e_{effect['name']}{amount}/x.jpg")


def test_openapi_takes_the_registry_parts_from_the_declarations() -> None:
    paths = openapi_document()["paths"]
    parameters = paths["/api/images/{image_id}/transform"]["get"]["parameters"]
    described = {p["name"]: p["description"] for p in parameters if p["in"] == "query"}
    assert described == documented()
    assert set(AMOUNTS) <= set(described)
    grammar = paths["/api/grammar"]["get"]["responses"]["200"]["content"]["application/json"]
    effects = grammar["schema"]["properties"]["effects"]["items"]["properties"]["name"]["enum"]
    assert effects == sorted(EFFECTS)


def patterns_in(value: object) -> list[str]:
    if isinstance(value, dict):
        found = [value["pattern"]] if isinstance(value.get("pattern"), str) else []
        return found + [p for v in value.values() for p in patterns_in(v)]
    if isinstance(value, list):
        return [p for v in value for p in patterns_in(v)]
    return []


async def test_every_pattern_compiles_as_an_input_pattern(local_api: Api) -> None:
    """The console puts the grammar's patterns in ``<input pattern>``, which browsers compile
    as ``^(?:…)$`` with the ``v`` flag (an unescaped ``-`` in a class is an error there: the
    t_ field had no pattern). Node's RegExp is the browsers' engine."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    patterns = patterns_in((await local_api.http.get("/api/grammar")).json())
    assert len(patterns) >= 1
    script = "for (const p of JSON.parse(process.argv[1])) new RegExp(`^(?:${p})$`, 'v')"
    done = subprocess.run(
        [node, "-e", script, json.dumps(patterns)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
