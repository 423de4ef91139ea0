"""The registry describing itself: the JSON of ``GET /api/grammar``.

Every token with its argument grammar, scope, rules and the transform that reads it; every
transform with its phase and tokens; every effect with its amount; the output formats and
the limits in force. The console builds its URL builder from this, and the OpenAPI document
and the docs are checked against it.
"""

from __future__ import annotations

from typing import Any

from origin.transforms.declarations import Phase, Token, Transform
from origin.transforms.effects import AMOUNTS, EFFECTS
from origin.transforms.formats import EXTENSIONS, FORMATS
from origin.transforms.limits import Limits
from origin.transforms.query import PLAN_PARAMETERS, parameters
from origin.transforms.registry import RULES, STAGE_TRANSFORMS, TOKENS

GRAMMAR_VERSION = 1


def _readers(key: str) -> list[str]:
    return [t.name for t in STAGE_TRANSFORMS if any(token.key == key for token in t.tokens)]


def _token(token: Token) -> dict[str, Any]:
    readers = _readers(token.key) or (["effects"] if token.key == "e" else [])
    found: dict[str, Any] = {
        "key": token.key,
        "title": token.title,
        "scope": token.scope.value,
        "doc": token.doc,
        "argument": token.argument.describe() if token.argument is not None else None,
        "transforms": readers,
        "rules": [rule.message for rule, keys in RULES if token.key in keys],
    }
    if token.aliases:
        found["aliases"] = list(token.aliases)
    return found


def _transform(transform: Transform) -> dict[str, Any]:
    return {
        "name": transform.name,
        "phase": transform.phase.name.lower(),
        "doc": transform.doc,
        "tokens": [token.key for token in transform.tokens],
    }


def _effect(name: str, transform: Transform) -> dict[str, Any]:
    amount = AMOUNTS[name]
    return {
        "name": name,
        "doc": transform.doc,
        "amount": None
        if amount is None
        else {
            "min": amount.low,
            "max": amount.high,
            "default": amount.default,
            "required": amount.required,
        },
        "budget_weight": transform.cost is not None,
    }


def grammar(limits: Limits) -> dict[str, Any]:
    """The whole grammar, with the limits this process enforces."""
    return {
        "version": GRAMMAR_VERSION,
        "url": "/i/{image_id}[/{stage}…]/{name}.{ext}",
        "phases": [phase.name.lower() for phase in Phase],
        # a token without an argument is written under another key (flags: fl_'s)
        "tokens": [_token(token) for token in TOKENS.values() if token.argument is not None],
        "transforms": [_transform(t) for t in STAGE_TRANSFORMS],
        "effects": [_effect(name, t) for name, t in EFFECTS.items()],
        "formats": list(FORMATS),
        "extensions": [*EXTENSIONS, "json"],
        "query_parameters": [*parameters(), *PLAN_PARAMETERS],
        "limits": {
            "max_stages": limits.max_stages,
            "max_tokens_per_stage": limits.max_tokens_per_stage,
            "max_text_length": limits.max_text_length,
            "max_output_dimension": limits.max_output_dimension,
            "max_output_pixels": limits.max_output_pixels,
            "max_frames": limits.max_frames,
        },
    }
