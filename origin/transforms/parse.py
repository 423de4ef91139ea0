"""The origin URL grammar: a raw request path becomes an immutable ``Plan``.

Pure: no I/O, no libvips, no web framework. Parsing works on the raw path: stages are split on
``/``, tokens on ``,``, keys on the first ``_``, and only then is a value percent-decoded, so
``%2C`` and ``%2F`` inside a value are a literal comma and slash. Each key is looked up in the
registry (an unknown key is an error, never skipped) and its value read by its declared
argument; ``t_`` presets are expanded in place; then each stage's declared rules are checked
and each transform builds its value (origin.transforms.registry has the order).

Normalisation (so ``Plan.canonical()`` is equal for equal meaning) is the transforms': dpr
folded into pixel sizes, ``ar_`` into the missing side, ``r_`` modulo 360, defaults dropped,
``jpg`` == ``jpeg``, hex colours lower-case; ``w_auto``/``dpr_auto`` resolved from the
request's snapped Client Hints, with ``Plan.client_hints`` saying which hints were used.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import unquote_to_bytes

from origin.errors import BadTransform, LimitExceeded
from origin.errors import shown as show
from origin.hints import DPR, NO_HINTS, WIDTH, Hints
from origin.transforms.arguments import IMAGE_ID, Colour, bad
from origin.transforms.declarations import Applied, Building, Scope, Seen, Written
from origin.transforms.formats import EXTENSIONS, negotiated_format
from origin.transforms.limits import DEFAULT_LIMITS, Limits
from origin.transforms.padding import colour_of
from origin.transforms.plan import Plan, Stage
from origin.transforms.registry import PLAN_KEYS, RULES, STAGE_ORDER, TOKENS, in_slot

_KEY = re.compile(r"[a-z]{1,4}", re.ASCII)
EMPTY = Stage()


def split_tokens(stage: str, limits: Limits) -> list[Written]:
    """One stage's text → its tokens, each read by its declared argument."""
    if stage == "":
        raise BadTransform("empty stage")
    out: list[Written] = []
    for raw in stage.split(","):
        key, sep, encoded = raw.partition("_")
        if not sep or not _KEY.fullmatch(key):
            raise bad(raw, "malformed token")
        token = TOKENS.get(key)
        if token is None or token.argument is None:
            raise bad(raw, "unknown token")
        try:
            text = unquote_to_bytes(encoded).decode("utf-8")
        except UnicodeDecodeError:
            raise bad(raw, "value is not UTF-8") from None
        value = token.argument.parse(raw, text, limits)
        # A value may file its token under another key (fl_keep_icc: the plan's flags).
        out.append(Written(getattr(value, "token_key", key), raw, value))
    return out


def expand(
    tokens: list[Written], presets: Mapping[str, str] | None, limits: Limits
) -> list[list[Written]]:
    """Expand ``t_`` in place: a one-stage preset merges into its stage, a longer one must be
    alone in its stage. Presets cannot name presets."""
    if not any(TOKENS[t.key].scope is Scope.PRESET for t in tokens):
        return [tokens]
    stages: list[list[Written]] = [[]]
    for t in tokens:
        if TOKENS[t.key].scope is not Scope.PRESET:
            stages[-1].append(t)
            continue
        chain = (presets or {}).get(str(t.value))
        if chain is None:
            raise bad(t.raw, "unknown preset")
        expanded = [split_tokens(s, limits) for s in chain.strip("/").split("/")]
        if any(TOKENS[x.key].scope is Scope.PRESET for s in expanded for x in s):
            raise bad(t.raw, "a preset cannot use t_")
        if len(expanded) == 1:
            stages[-1].extend(expanded[0])
        elif len(tokens) == 1:
            return expanded
        else:
            raise bad(t.raw, "a multi-stage preset must be alone in its stage")
    return stages


def hints_used(tokens: list[Written]) -> set[str]:
    """Which Client Hints these tokens consult (``w_auto``: width, ``dpr_auto``: dpr)."""
    kinds = set()
    for t in tokens:
        hint = TOKENS[t.key].hint
        kind = None if hint is None else hint(t.value)
        if kind is not None:
            kinds.add(kind)
    return kinds


def _seen(tokens: list[Written]) -> tuple[Seen, dict[str, Written]]:
    """The stage's tokens by key (repeats refused), and its plan-level ones apart."""
    by_key: dict[str, Written] = {}
    effects: list[Written] = []
    for t in tokens:
        if t.key == "e":
            if any(e.value[0] is t.value[0] for e in effects):
                raise bad(t.raw, "repeated token")
            effects.append(t)
            continue
        if t.key in by_key:
            raise bad(t.raw, "repeated token")
        by_key[t.key] = t
    plan_tokens = {k: by_key.pop(k) for k in PLAN_KEYS if k in by_key}
    return Seen(by_key, effects), plan_tokens


def build_stage(
    tokens: list[Written], limits: Limits, hints: Hints = NO_HINTS
) -> tuple[Stage, dict[str, Written]]:
    """Tokens of one stage -> a Stage, plus the plan-level tokens (f_, q_) it held."""
    if len(tokens) > limits.max_tokens_per_stage:
        raise LimitExceeded(
            f"more than {limits.max_tokens_per_stage} tokens in a stage: '{show(tokens[0].raw)}...'"
        )
    seen, plan_tokens = _seen(tokens)
    for rule, keys in RULES:
        for key in keys:
            if key in seen and rule.broken(seen):
                raise bad(seen.raw(key), rule.message)
    building = Building(limits, hints)
    steps: list[Applied] = []
    for entry in STAGE_ORDER:
        if isinstance(entry, str):  # the slot's effects, as written
            written = {e.value[0]: e.value for e in seen.effects}
            steps.extend(Applied(*written[t]) for t in in_slot(entry, written))
            continue
        value = entry.build(seen, building)
        if value is not None:
            steps.append(Applied(entry, value))
    return Stage(tuple(steps)), plan_tokens


def parse_stages(
    chain: list[str],
    presets: Mapping[str, str] | None,
    limits: Limits,
    hints: Hints = NO_HINTS,
) -> tuple[tuple[Stage, ...], dict[str, Written], tuple[str, ...]]:
    """Stages, plan-level tokens, and the Client Hints used (a tuple in (width, dpr) order)."""
    if len(chain) > limits.max_stages:
        raise LimitExceeded(f"more than {limits.max_stages} stages")
    stages: list[Stage] = []
    plan_tokens: dict[str, Written] = {}
    kinds: set[str] = set()
    for text in chain:
        for tokens in expand(split_tokens(text, limits), presets, limits):
            kinds |= hints_used(tokens)
            stage, found = build_stage(tokens, limits, hints)
            for key, t in found.items():
                if key in plan_tokens:
                    raise bad(t.raw, "repeated token")
                plan_tokens[key] = t
            stages.append(stage)
    if len(stages) > limits.max_stages:
        raise LimitExceeded(f"more than {limits.max_stages} stages after expanding presets")
    # A stage that does nothing (e.g. only `f_webp`, or `r_360`) is dropped from the chain.
    uses = tuple(kind for kind in (WIDTH, DPR) if kind in kinds)
    return tuple(s for s in stages if s != EMPTY), plan_tokens, uses


def parse_chain(
    chain: str, *, presets: Mapping[str, str] | None = None, limits: Limits = DEFAULT_LIMITS
) -> tuple[Stage, ...]:
    """``"w_300,h_200/e_grayscale"`` -> stages. ``f_``/``q_`` are accepted (validated) but are
    plan-level and so not part of the returned stages."""
    if not isinstance(chain, str):
        raise BadTransform("chain must be text")
    chain = chain.strip("/")
    if chain == "":
        return ()
    stages, _, _ = parse_stages(chain.split("/"), presets, limits)
    return stages


def flatten_colour(stages: tuple[Stage, ...]) -> Colour | None:
    """The chain's last ``b_``: what an output without alpha is flattened onto."""
    for stage in reversed(stages):
        colour = colour_of(stage.value("background"))
        if colour is not None:
            return colour
    return None


def build_plan(
    image_id: str,
    stages: tuple[Stage, ...],
    *,
    name: str,
    ext: str,
    fmt: str | None,
    quality: int | None,
    auto_quality: bool,
    negotiated: bool,
    client_hints: tuple[str, ...] = (),
    flags: tuple[str, ...] = (),
) -> Plan:
    """Assemble a Plan (shared with the /transform query API)."""
    overlay_ids = tuple(
        dict.fromkeys(
            o.image_id
            for s in stages
            if (o := s.value("overlay")) is not None and o.image_id is not None
        )
    )
    return Plan(
        image_id=image_id,
        stages=stages,
        format=fmt,
        name=name,
        ext=ext,
        metadata_only=ext == "json",
        negotiated=negotiated,
        quality=quality,
        auto_quality=auto_quality,
        overlay_ids=overlay_ids,
        flatten=flatten_colour(stages),
        client_hints=client_hints,
        flags=flags,
    )


def parse_path(
    path: str,
    *,
    accept: str | None = None,
    presets: Mapping[str, str] | None = None,
    limits: Limits = DEFAULT_LIMITS,
    hints: Hints = NO_HINTS,
) -> Plan:
    """The raw request path (percent-encoding kept, no query) -> Plan; ``w_auto``/``dpr_auto``
    take their values from ``hints`` (already snapped: origin.hints)."""
    if not isinstance(path, str) or not path.startswith("/i/"):
        raise BadTransform("expected /i/{image_id}/.../{name}.{ext}")
    parts = path[3:].split("/")
    if len(parts) < 2:
        raise BadTransform("expected /i/{image_id}/.../{name}.{ext}")
    image_id, chain, last = parts[0], parts[1:-1], parts[-1]
    if not IMAGE_ID.fullmatch(image_id):
        raise BadTransform("bad image id")
    name, dot, ext = last.rpartition(".")
    if not dot or not name:
        raise BadTransform("expected {name}.{ext} at the end of the path")
    ext = ext.lower()
    if ext != "json" and ext not in EXTENSIONS:
        raise BadTransform(f"unknown extension '{show(ext)}'")
    stages, plan_tokens, uses = parse_stages(chain, presets, limits, hints)

    fmt: str | None = EXTENSIONS.get(ext)
    negotiated = False
    if "f" in plan_tokens:
        requested = str(plan_tokens["f"].value)
        if requested == "auto":
            negotiated = True
            fmt = negotiated_format(accept, fmt)
        else:
            fmt = requested
    flags = plan_tokens["flags"].value.names if "flags" in plan_tokens else ()
    quality: int | None = None
    auto_quality = False
    if "q" in plan_tokens:
        q = plan_tokens["q"].value
        quality = q if isinstance(q, int) else None
        auto_quality = q is None
    return build_plan(
        image_id,
        stages,
        name=name,
        ext=ext,
        fmt=fmt,
        quality=quality,
        auto_quality=auto_quality,
        negotiated=negotiated,
        client_hints=uses,
        flags=flags,
    )
