"""Named transformations: the operator's presets (``PRESETS_FILE``) and each user's own
(``/api/transformations``), as the one mapping ``t_<name>`` is expanded from for that
user's images — and which names may be asked for without a signature (origin.public).

Operator presets win: a user cannot create a name a preset holds (409), and a preset the
operator adds later hides the user's transformation of that name (it is listed as
``shadowed``). A user's transformation cannot use ``t_`` (no nesting, so no cycles).

``Named.version`` is a digest of the user's definitions: the plan cache (origin.plans) keys
a path that uses ``t_`` by it, and a derivative's identity is the expanded chain
(``Plan.canonical``), so an edited definition is never answered from the old one.
``Named.uses`` names the owner's transformations a URL goes through, each with a digest of
its definition (``definition``): the shipped nginx's keys are recorded with it, so an answer
served from a definition edited meanwhile is purged (origin.edge_keys).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING
from urllib.parse import unquote

if TYPE_CHECKING:  # settings read PRESETS_FILE through this module: standard library only
    from origin.records import TransformationRecord

NAME = re.compile(r"[a-z0-9_-]{1,64}", re.ASCII)  # a user's transformation
PRESET_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}", re.ASCII)  # an operator preset (as `t_`)
# The output extensions an unsigned transformation may be asked for when it lists none.
DEFAULT_FORMATS = ("jpg", "png", "webp", "avif", "gif")
# origin.transforms.formats.EXTENSIONS and json (tests/origin/test_named.py holds them equal).
OUTPUT_EXTENSIONS = frozenset(("jpg", "jpeg", "png", "webp", "avif", "gif", "json"))
# The t_ names a URL's path uses (its query and an nginx key's bucket suffix excluded).
T_NAMES = re.compile(r"(?:^|[/,])t_([^/,|?]+)")

# The owner's transformations a URL goes through, each with its definition's digest, sorted.
Uses = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Presets:
    """The operator's presets: every chain, and the extensions of those marked unsigned."""

    chains: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    unsigned: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Named:
    """What ``t_`` means for one owner's images."""

    chains: Mapping[str, str]  # the operator's presets and the owner's transformations
    unsigned: Mapping[str, frozenset[str]]  # name → extensions it may be served unsigned as
    version: str = ""  # "" when the owner has no transformations of their own
    # The owner's names (those no preset hides), each with its definition's digest.
    own: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def uses(self, path: str) -> Uses:
        """The owner's own transformations ``path`` goes through (presets, fixed while the
        process runs, are not among them)."""
        if not self.own:
            return ()
        return tuple(sorted({(n, self.own[n]) for n in names_in(path) if n in self.own}))


def names_in(path: str) -> list[str]:
    """The ``t_`` names in a URL's path (or in an nginx key: its path part), percent-decoded
    as the URL parser decodes them (``t_%74humb`` is ``thumb``)."""
    return T_NAMES.findall(unquote(path.split("?", 1)[0]))


def definition(record: TransformationRecord) -> str:
    """A digest of what the transformation serves: its chain, and as what it is unsigned."""
    text = json.dumps([record.chain, record.unsigned, sorted(record.formats)])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def named_for(presets: Presets, records: Iterable[TransformationRecord]) -> Named:
    """The operator's presets over the owner's transformations (presets win)."""
    own = [r for r in records if r.name not in presets.chains]
    if not own:
        return Named(presets.chains, presets.unsigned)
    chains = {r.name: r.chain for r in own} | dict(presets.chains)
    unsigned = {r.name: frozenset(r.formats) for r in own if r.unsigned} | dict(presets.unsigned)
    own_names = MappingProxyType({r.name: definition(r) for r in own})
    text = json.dumps(sorted(own_names.items()), separators=(",", ":"))
    version = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return Named(MappingProxyType(chains), MappingProxyType(unsigned), version, own_names)


def check_formats(formats: object) -> tuple[str, ...]:
    """A list of output extensions (lower-case, known, no repeats), else ValueError."""
    if not isinstance(formats, list) or not formats or len(formats) > len(OUTPUT_EXTENSIONS):
        raise ValueError(f"'formats' must be a list of 1 to {len(OUTPUT_EXTENSIONS)} extensions")
    for ext in formats:
        if not isinstance(ext, str) or ext not in OUTPUT_EXTENSIONS:
            known = ", ".join(sorted(OUTPUT_EXTENSIONS))
            raise ValueError(f"'formats' may hold only {known}")
    if len(set(formats)) != len(formats):
        raise ValueError("'formats' repeats an extension")
    return tuple(formats)


def load_presets(path: Path) -> Presets:
    """``PRESETS_FILE``: ``{"name": "chain"}`` or ``{"name": {"chain": …, "unsigned": true,
    "formats": […]}}``; ValueError (one line) for what it cannot read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise ValueError(f"{path} is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValueError('expected a JSON object {"name": "chain" or {"chain": …}}')
    chains: dict[str, str] = {}
    unsigned: dict[str, frozenset[str]] = {}
    for name, entry in data.items():
        if not PRESET_NAME.fullmatch(name):
            raise ValueError(f"preset name {name!r}: 1 to 64 of A-Z a-z 0-9 _ . -")
        if isinstance(entry, str):
            entry = {"chain": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("chain"), str):
            raise ValueError(f'preset {name!r}: expected a chain or {{"chain": …}}')
        extra = set(entry) - {"chain", "unsigned", "formats"}
        if extra:
            raise ValueError(f"preset {name!r}: unknown key {sorted(extra)[0]!r}")
        chains[name] = entry["chain"]
        if entry.get("unsigned", False) is not False:
            if entry["unsigned"] is not True:
                raise ValueError(f"preset {name!r}: 'unsigned' must be true or false")
            try:
                formats = check_formats(entry.get("formats", list(DEFAULT_FORMATS)))
            except ValueError as exc:
                raise ValueError(f"preset {name!r}: {exc}") from None
            unsigned[name] = frozenset(formats)
        elif "formats" in entry:
            raise ValueError(f"preset {name!r}: 'formats' is for an unsigned preset")
    return Presets(MappingProxyType(chains), MappingProxyType(unsigned))
