"""Which way the modules depend: the records and the settings are leaves the rest builds on,
and only origin/store speaks SQL."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SQL_PACKAGES = {"sqlalchemy", "aiosqlite", "asyncpg"}


def loaded_by(module: str) -> set[str]:
    """Every module a fresh interpreter has loaded once ``module`` is imported."""
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True
    )
    return set(run.stdout.split())


def ours(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in ("origin", "admin_api", "imgorigin")}


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_records_need_no_sql_and_nothing_of_ours() -> None:
    loaded = loaded_by("origin.records")
    assert not {m.split(".")[0] for m in loaded} & SQL_PACKAGES
    assert ours(loaded) == {"origin", "origin.records"}


def test_settings_depend_on_nothing_of_the_core() -> None:
    # origin.environ: the variables' parsers, with origin.digits (ASCII digits);
    # origin.settings_groups: the background work's
    # and the purge targets' groups, parsed with them; origin.dev_secrets: the development secrets
    # file, with origin.permissions (file modes): standard library only;
    # origin.sources.config reads SOURCES_FILE, origin.magic tells a fallback image's format:
    # both standard library only; origin.named reads PRESETS_FILE, standard library only.
    assert ours(loaded_by("origin.settings")) == {
        "origin",
        "origin.settings",
        "origin.environ",
        "origin.digits",
        "origin.settings_groups",
        "origin.dev_secrets",
        "origin.permissions",
        "origin.sources",
        "origin.sources.config",
        "origin.magic",
        "origin.named",
    }


def test_only_the_store_speaks_sql() -> None:
    outside = {
        str(path.relative_to(ROOT)): imported_packages(path) & SQL_PACKAGES
        for package in ("origin", "admin_api", "imgorigin")
        for path in sorted((ROOT / package).rglob("*.py"))
        if (ROOT / "origin" / "store") not in path.parents
    }
    assert {name: found for name, found in outside.items() if found} == {}
