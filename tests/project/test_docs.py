"""Documentation that cannot drift: every setting is documented (datasette's trick)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from origin.settings import Settings
from origin.settings_groups import Background

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_SOURCE = "".join(
    (ROOT / "origin" / name).read_text() for name in ("settings.py", "settings_groups.py")
)
CONFIG_DOC = (ROOT / "docs" / "configuration.md").read_text()
README = (ROOT / "README.md").read_text()


def environment_variables() -> set[str]:
    return set(re.findall(r'environ(?:\.get)?\(\s*"([A-Z][A-Z0-9_]+)"', SETTINGS_SOURCE)) | set(
        re.findall(
            r'_(?:integer|number|choice|list|url|parsed|flag|schedule|ports|networks|hosts)\(\s*environ,\s*"([A-Z][A-Z0-9_]+)"',
            SETTINGS_SOURCE,
        )
    )


def test_every_variable_is_documented() -> None:
    variables = environment_variables()
    assert len(variables) >= 25
    undocumented = sorted(v for v in variables if f"`{v}`" not in CONFIG_DOC)
    assert undocumented == []


def test_every_settings_field_comes_from_a_variable() -> None:
    fields = {f.name for f in dataclasses.fields(Settings)}
    derived = {
        "env",
        "s3_region",
        "aws_access_key_id",
        "aws_secret_access_key",
        "url_signing_keys",
        "presets",
        "unsigned_presets",  # PRESETS_FILE
        "sources",  # SOURCES_FILE
        "metrics_dir",  # IMGORIGIN_METRICS_DIR, set by `imgorigin serve --workers N`
        "background",  # a group: its own fields, below
        "purging",  # PURGE_* and PURGES_PER_MINUTE
    }
    variables = {v.lower() for v in environment_variables()}
    assert sorted(fields - derived - variables) == []
    grouped = {f.name for f in dataclasses.fields(Background)}
    assert sorted(grouped - variables) == []


def test_readme_shows_the_two_commands() -> None:
    assert "make run" in README and "make test" in README
    assert "docs/configuration.md" in README


def test_every_token_and_effect_is_documented() -> None:
    from origin.transforms.effects import EFFECTS
    from origin.transforms.flags import FLAG_NAMES
    from origin.transforms.query import parameters
    from origin.transforms.registry import TOKENS

    url_api = (ROOT / "docs" / "url-api.md").read_text()
    # A token without an argument is written under another key (flags: fl_<name>).
    written = [key for key, token in TOKENS.items() if token.argument is not None]
    missing = [f"{key}_" for key in written if f"`{key}_" not in url_api]
    missing += [f"fl_{name}" for name in FLAG_NAMES if f"fl_{name}" not in url_api]
    missing += [name for name in EFFECTS if name not in url_api]
    missing += [name for name in parameters() if f"`{name}" not in url_api]
    assert missing == []


def test_every_declared_picture_is_drawn_and_shown() -> None:
    """docs/make_pictures.py renders what the declarations name; url-api.md shows each."""
    from origin.transforms.registry import examples

    url_api = (ROOT / "docs" / "url-api.md").read_text()
    names = sorted(examples())
    assert [n for n in names if not (ROOT / "docs" / "img" / f"{n}.jpg").is_file()] == []
    assert [n for n in names if f"(img/{n}.jpg)" not in url_api] == []


def test_every_admin_route_is_documented() -> None:
    from admin_api.openapi import openapi_document

    admin_doc = (ROOT / "docs" / "admin-api.md").read_text()
    paths = {
        p.replace("{image_id}", "{id}").replace("{key_id}", "{id}").replace("{webhook_id}", "{id}")
        for p in openapi_document()["paths"]
    }
    assert sorted(p for p in paths if p not in admin_doc) == []
