"""GET /api/grammar: the registry describes itself, publicly and cacheably, and the
OpenAPI document's registry parts come from the same declarations."""

from __future__ import annotations

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
