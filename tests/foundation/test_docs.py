"""Documentation that cannot drift: every setting is documented (datasette's trick)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from origin.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_SOURCE = (ROOT / "origin" / "settings.py").read_text()
CONFIG_DOC = (ROOT / "docs" / "configuration.md").read_text()
README = (ROOT / "README.md").read_text()


def environment_variables() -> set[str]:
    return set(re.findall(r'environ(?:\.get)?\(\s*"([A-Z][A-Z0-9_]+)"', SETTINGS_SOURCE)) | set(
        re.findall(
            r'_(?:integer|number|choice|list|url|parsed)\(\s*environ,\s*"([A-Z][A-Z0-9_]+)"',
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
    }
    variables = {v.lower() for v in environment_variables()}
    assert sorted(fields - derived - variables) == []


def test_readme_shows_the_two_commands() -> None:
    assert "make run" in README and "make test" in README
    assert "docs/configuration.md" in README
