"""Named transformations (origin.named) and the unsigned URL check (origin.public), pure."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from origin.named import OUTPUT_EXTENSIONS, Presets, load_presets, named_for
from origin.public import unsigned_allowed, url_name
from origin.records import TransformationRecord
from origin.transforms.formats import EXTENSIONS

ID = "a" * 32
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def record(
    name: str, chain: str, unsigned: bool = True, formats: tuple[str, ...] = ("webp",)
) -> TransformationRecord:
    return TransformationRecord("u" * 32, name, chain, unsigned, formats, NOW, NOW)


def test_the_extensions_are_the_grammars() -> None:
    assert {*EXTENSIONS, "json"} == OUTPUT_EXTENSIONS


def test_presets_win_and_the_version_follows_the_definitions() -> None:
    presets = Presets({"thumb": "w_50"}, {"thumb": frozenset({"jpg"})})
    assert named_for(presets, []).version == ""
    named = named_for(presets, [record("thumb", "w_10"), record("card", "w_120")])
    assert dict(named.chains) == {"thumb": "w_50", "card": "w_120"}
    assert dict(named.unsigned) == {"thumb": frozenset({"jpg"}), "card": frozenset({"webp"})}
    assert set(named.own) == {"card"}
    edited = named_for(presets, [record("card", "w_121")])
    assert edited.version and edited.version != named.version
    assert named_for(presets, [record("card", "w_120")]).version == named.version
    signed_only = named_for(presets, [record("card", "w_120", unsigned=False)])
    assert "card" not in signed_only.unsigned and signed_only.version != named.version


def test_a_url_uses_the_owners_own_transformations_with_their_definitions() -> None:
    presets = Presets({"thumb": "w_50"})
    named = named_for(presets, [record("card", "w_120"), record("hero", "w_800")])
    card = named.own["card"]
    assert named.uses(f"/i/{ID}/t_card,t_thumb/t_hero/a.webp?s=x|webp") == (
        ("card", card),
        ("hero", named.own["hero"]),
    )
    assert named.uses(f"/i/{ID}/t_thumb/a.webp") == ()  # a preset: fixed while running
    assert named.uses(f"/i/{ID}/t_%63ard/a.webp") == (("card", card),)  # as the parser reads it
    assert named.uses(f"/i/{ID}/w_10/a.webp?t_card=1") == ()  # the query names nothing
    for edit in (record("card", "w_121"), record("card", "w_120", unsigned=False)):
        assert named_for(presets, [edit]).own["card"] != card
    assert named_for(presets, [record("card", "w_120")]).own["card"] == card


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        (f"/i/{ID}/t_card/My-Cat.webp", True),
        (f"/i/{ID}/t_card,f_auto/My-Cat.webp", True),
        (f"/i/{ID}/t_card,q_auto/My-Cat.webp", True),
        (f"/i/{ID}/t_card,f_auto,q_auto/My-Cat.webp", True),
        (f"/i/{ID}/t_card,q_auto,f_auto/My-Cat.webp", False),
        (f"/i/{ID}/t_card,f_auto,f_auto/My-Cat.webp", False),
        (f"/i/{ID}/t_card,w_10/My-Cat.webp", False),
        (f"/i/{ID}/w_10,t_card/My-Cat.webp", False),
        (f"/i/{ID}/t_card/My-Cat.jpg", False),
        (f"/i/{ID}/t_card/My-Cat.WEBP", False),
        (f"/i/{ID}/t_card/my-cat.webp", False),
        (f"/i/{ID}/t_card/My-Cat", False),
        (f"/i/{ID}/t_other/My-Cat.webp", False),
        (f"/i/{ID}/t_card/x/My-Cat.webp", False),
        (f"/i/{ID}/My-Cat.webp", False),
        (f"/i/{ID}/t_card/My%2DCat.webp", False),
    ],
)
def test_unsigned_urls(path: str, allowed: bool) -> None:
    named = named_for(Presets(), [record("card", "w_120")])
    assert unsigned_allowed(path, "My Cat.JPG", named) is allowed


def test_url_names() -> None:
    assert url_name("My Cat.JPG") == "My-Cat"
    assert url_name("Café crème.png") == "Cafe-creme"
    assert url_name("...") == "image"


def test_presets_file(tmp_path: Path) -> None:
    path = tmp_path / "presets.json"
    path.write_text(
        json.dumps(
            {
                "thumb": "w_50",
                "card": {"chain": "w_120", "unsigned": True},
                "hero": {"chain": "w_900", "unsigned": True, "formats": ["webp", "avif"]},
                "plain": {"chain": "w_10", "unsigned": False},
            }
        )
    )
    presets = load_presets(path)
    assert dict(presets.chains) == {
        "thumb": "w_50",
        "card": "w_120",
        "hero": "w_900",
        "plain": "w_10",
    }
    assert presets.unsigned["hero"] == {"webp", "avif"}
    assert presets.unsigned["card"] == {"jpg", "png", "webp", "avif", "gif"}
    assert "plain" not in presets.unsigned
    for bad, message in [
        ([1], "expected a JSON object"),
        ({"a b": "w_1"}, "preset name"),
        ({"a": 3}, "expected a chain"),
        ({"a": {"chain": "w_1", "unsigned": "yes"}}, "'unsigned'"),
        ({"a": {"chain": "w_1", "unsigned": True, "formats": ["bmp"]}}, "'formats'"),
        ({"a": {"chain": "w_1", "unsigned": True, "formats": [{}]}}, "'formats'"),
        ({"a": {"chain": "w_1", "formats": ["webp"]}}, "unsigned preset"),
        ({"a": {"chain": "w_1", "size": 2}}, "unknown key"),
    ]:
        path.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=message):
            load_presets(path)
