"""Policy-scoped signatures: one signature for a bounded family of variants of one URL.

Pure: no I/O, no web framework. A signer writes a URL *template* whose variable parts are
`*`, and a *policy* that bounds them; the browser fills the template in:

    template  /i/<id>/w_*,dpr_*,c_fill/hero.*
    policy    w_320to1280by160.dpr_2.f_avif-webp-jpg.exp_1893456000
    signed    template + "?p=" + policy                  (everything before "&s=")
    URL       template + "?p=" + policy + "&s=" + base64url_nopad(HMAC-SHA256(key, signed))
    request   /i/<id>/w_640,dpr_2,c_fill/hero.webp?p=…&s=…

The origin rebuilds the template from the request (the first stage's `w_` and `dpr_` values
and the extension become `*`, for the parts the policy names), checks the signature over it,
then that each filled-in value is one the policy allows, spelled exactly as listed.

Policy grammar (only `[a-z0-9._-]`: no URL library ever re-encodes it), clauses in this
order, each at most once, at least one of `w`, `dpr`, `f`:

    w_<from>to<to>by<step>      widths from, from+step, …, to ((to-from) % step == 0)
    w_<a>-<b>-…                 or a list of widths, strictly ascending
    dpr_<1|2|3|4>               DPRs allowed: 1, 1.5, 2, 3, 4 up to this maximum
    f_<ext>-<ext>-…             extensions: jpg jpeg png webp avif gif, no repeats
    exp_<unix seconds>          the URL is good through that second

Numbers are decimal without leading zeros; at most 64 widths; a policy is at most 512
characters. Every variant a policy allows is an ordinary URL with its own cache entry, so
one policy URL gives at most 64 × 5 × 6 = 1920 variants.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace
from decimal import Decimal
from itertools import pairwise

from origin.errors import BadRequest, BadSignature, shown

MAX_POLICY_LENGTH = 512
MAX_WIDTHS = 64
MAX_WIDTH = 65535
POLICY_FORMATS = ("jpg", "jpeg", "png", "webp", "avif", "gif")
DPR_SPELLINGS = ("1", "1.5", "2", "3", "4")  # the DPR values a policy allows, as written
PLACEHOLDER = "*"

_NUMBER = r"[1-9][0-9]{0,4}"
_CLAUSE = re.compile(r"([a-z]+)_([a-z0-9-]+)", re.ASCII)
_RANGE = re.compile(rf"({_NUMBER})to({_NUMBER})by({_NUMBER})", re.ASCII)
_LIST = re.compile(rf"{_NUMBER}(?:-{_NUMBER})*", re.ASCII)
_EXP = re.compile(r"[1-9][0-9]{0,11}", re.ASCII)
_ORDER = ("w", "dpr", "f", "exp")


@dataclass(frozen=True)
class Policy:
    """What a policy URL may vary. ``step`` set: the widths are written as a range."""

    widths: tuple[int, ...] = ()
    step: int | None = None
    max_dpr: int | None = None
    formats: tuple[str, ...] = ()
    exp: int | None = None

    @property
    def dprs(self) -> tuple[str, ...]:
        if self.max_dpr is None:
            return ()
        return tuple(d for d in DPR_SPELLINGS if Decimal(d) <= self.max_dpr)

    def text(self) -> str:
        """The policy's one spelling (``parse_policy(p.text()) == p``)."""
        clauses = []
        if self.widths:
            if self.step is not None:
                first, last = self.widths[0], self.widths[-1]
                clauses.append(f"w_{first}to{last}by{self.step}")
            else:
                clauses.append("w_" + "-".join(map(str, self.widths)))
        if self.max_dpr is not None:
            clauses.append(f"dpr_{self.max_dpr}")
        if self.formats:
            clauses.append("f_" + "-".join(self.formats))
        if self.exp is not None:
            clauses.append(f"exp_{self.exp}")
        return ".".join(clauses)


def _bad(why: str) -> BadRequest:
    return BadRequest(f"malformed policy (p): {why}")


def _widths(value: str) -> tuple[tuple[int, ...], int | None]:
    found = _RANGE.fullmatch(value)
    if found is not None:
        first, last, step = (int(g) for g in found.groups())
        if first >= last or (last - first) % step:
            raise _bad("a width range needs from < to and (to - from) divisible by step")
        if (last - first) // step + 1 > MAX_WIDTHS:
            raise _bad(f"at most {MAX_WIDTHS} widths")
        return tuple(range(first, last + 1, step)), step
    if not _LIST.fullmatch(value):
        raise _bad("w_ takes <from>to<to>by<step> or widths joined by '-'")
    widths = tuple(int(w) for w in value.split("-"))
    if any(b <= a for a, b in pairwise(widths)):
        raise _bad("listed widths must be strictly ascending")
    if len(widths) > MAX_WIDTHS:
        raise _bad(f"at most {MAX_WIDTHS} widths")
    return widths, None


def _formats(value: str) -> tuple[str, ...]:
    formats = tuple(value.split("-"))
    if any(f not in POLICY_FORMATS for f in formats):
        raise _bad(f"f_ takes extensions from {', '.join(POLICY_FORMATS)}")
    if len(set(formats)) != len(formats):
        raise _bad("a format is listed twice")
    return formats


@functools.lru_cache(maxsize=1024)  # policies repeat on every URL of a page's srcset
def parse_policy(text: str) -> Policy:
    """The policy as sent in ``p`` → Policy; anything off the grammar is 400 ``bad_request``."""
    if not text or len(text) > MAX_POLICY_LENGTH:
        raise _bad(f"expected 1 to {MAX_POLICY_LENGTH} characters")
    policy = Policy()
    position = 0
    for clause in text.split("."):
        found = _CLAUSE.fullmatch(clause)
        if found is None:
            raise _bad(f"unexpected '{clause[:20]}'")
        name, value = found.groups()
        if name not in _ORDER[position:]:
            raise _bad(
                f"unknown, repeated or out-of-order clause '{name}_' (order: w, dpr, f, exp)"
            )
        position = _ORDER.index(name) + 1
        if name == "w":
            widths, step = _widths(value)
            policy = replace(policy, widths=widths, step=step)
        elif name == "dpr":
            if value not in ("1", "2", "3", "4"):
                raise _bad("dpr_ takes the maximum DPR: 1, 2, 3 or 4")
            policy = replace(policy, max_dpr=int(value))
        elif name == "f":
            policy = replace(policy, formats=_formats(value))
        else:
            if not _EXP.fullmatch(value):
                raise _bad("exp_ takes unix seconds")
            policy = replace(policy, exp=int(value))
    if not (policy.widths or policy.max_dpr or policy.formats):
        raise _bad("a policy varies at least one of w, dpr, f")
    if any(w > MAX_WIDTH for w in policy.widths):
        raise _bad(f"widths are at most {MAX_WIDTH}")
    return policy


@dataclass(frozen=True)
class Filled:
    """A request path taken apart: its template and the values put in the placeholders."""

    template: str
    width: str | None = None
    dpr: str | None = None
    ext: str | None = None


def _first_stage_value(tokens: list[str], key: str) -> tuple[int, str] | None:
    for index, token in enumerate(tokens):
        if token.startswith(key + "_"):
            return index, token[len(key) + 1 :]
    return None


def template_of(path: str, policy: Policy) -> Filled:
    """Put the placeholders back into ``path`` where the policy lets the URL vary.

    The first stage's ``w_`` (``dpr_``) value when the policy has ``w`` (``dpr``); the
    extension after the last ``.`` (a ``/r/`` URL's format after the last ``@``) when it has
    ``f``. A URL without the part the policy
    varies cannot match the signed template: 403 ``bad_signature`` at once.
    """
    segments = path.split("/")  # "", "i", id, stage…, name.ext (or "", "r", source, stage…)
    filled: dict[str, str] = {}
    if policy.widths or policy.max_dpr is not None:
        if len(segments) < 5:
            raise BadSignature("this policy URL needs w_/dpr_ in its first stage")
        tokens = segments[3].split(",")
        for key, wanted in (("w", bool(policy.widths)), ("dpr", policy.max_dpr is not None)):
            if not wanted:
                continue
            found = _first_stage_value(tokens, key)
            if found is None:
                raise BadSignature(f"this policy URL needs {key}_ in its first stage")
            index, filled[key] = found
            tokens[index] = f"{key}_{PLACEHOLDER}"
        segments[3] = ",".join(tokens)
    if policy.formats:
        mark = "@" if path.startswith("/r/") else "."  # a source URL names it as @<format>
        name, dot, ext = segments[-1].rpartition(mark)
        if not dot:
            raise BadSignature("this policy URL needs an extension")
        filled["ext"] = ext
        segments[-1] = f"{name}{mark}{PLACEHOLDER}"
    return Filled("/".join(segments), filled.get("w"), filled.get("dpr"), filled.get("ext"))


def signed_text(template: str, policy_text: str) -> str:
    """What the signature covers: the URL template up to (not including) ``&s=``."""
    return f"{template}?p={policy_text}"


def check_allowed(policy: Policy, filled: Filled) -> None:
    """Each filled-in value is one the policy lists, spelled as listed — else 403."""
    if filled.width is not None and filled.width not in {str(w) for w in policy.widths}:
        raise BadSignature(f"w_{shown(filled.width, 20)} is not allowed by the URL's policy (p)")
    if filled.dpr is not None and filled.dpr not in policy.dprs:
        raise BadSignature(f"dpr_{shown(filled.dpr, 20)} is not allowed by the URL's policy (p)")
    if filled.ext is not None and filled.ext not in policy.formats:
        raise BadSignature(f".{shown(filled.ext, 20)} is not allowed by the URL's policy (p)")


def check_template(template: str, policy: Policy) -> None:
    """For signers: ``template`` has exactly the placeholders ``policy`` fills (ValueError)."""
    if not template.startswith(("/i/", "/r/")) or "?" in template:
        raise ValueError("a template is an /i/… or /r/… path without a query")
    try:
        filled = template_of(template, policy)
    except BadSignature as exc:
        raise ValueError(exc.message) from None
    for name, value, wanted in (
        ("w_*", filled.width, bool(policy.widths)),
        ("dpr_*", filled.dpr, policy.max_dpr is not None),
        (".* extension (@* format)", filled.ext, bool(policy.formats)),
    ):
        if wanted and value != PLACEHOLDER:
            raise ValueError(f"the policy varies {name}: write it as a placeholder")
    placeholders = sum(v is not None for v in (filled.width, filled.dpr, filled.ext))
    if template.count(PLACEHOLDER) != placeholders:
        raise ValueError("the template has a '*' the policy does not fill")


def fill(url: str, *, w: int | None = None, dpr: str | None = None, f: str | None = None) -> str:
    """A signed policy URL with its placeholders filled in (what the browser does)."""
    path, sep, query = url.partition("?")
    segments = path.split("/")
    if w is not None or dpr is not None:
        tokens = segments[3].split(",")
        for key, value in (("w", w), ("dpr", dpr)):
            if value is not None:
                tokens = [f"{key}_{value}" if t == f"{key}_*" else t for t in tokens]
        segments[3] = ",".join(tokens)
    if f is not None:
        mark = "@" if path.startswith("/r/") else "."
        segments[-1] = segments[-1].removesuffix(mark + "*") + mark + f
    return "/".join(segments) + sep + query
