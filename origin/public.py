"""Strict public delivery: which unsigned ``/i/…`` URLs a public image is served at.

A site that cannot sign URLs (a static site, a CMS template, Markdown, e-mail) may link

    /i/<id>/t_<name>/<seo>.<ext>                         and, with negotiation or q_auto,
    /i/<id>/t_<name>,f_auto/<seo>.<ext>   /i/<id>/t_<name>,q_auto/<seo>.<ext>
    /i/<id>/t_<name>,f_auto,q_auto/<seo>.<ext>

when the image is ``public``, ``<name>`` is one of its owner's transformations marked
``unsigned`` (or an operator preset marked so), ``<ext>`` one the transformation allows and
``<seo>`` the image's own name (``url_name`` of its original filename). Nothing else may be
added, so the variants a stranger can ask for are few and known in advance: ``w_auto`` and
``dpr_auto`` inside the transformation resolve only to the snapped widths and DPR steps, and
``f_auto`` only to the formats the origin negotiates. Every other unsigned request is 403
``bad_signature`` (origin.credentials); renders they cause are rate limited per image and
per owner (origin.delivery).
"""

from __future__ import annotations

import re
import unicodedata

from origin.named import Named

# What may follow t_<name> in the one stage, in this order.
SUFFIXES = ((), ("f_auto",), ("q_auto",), ("f_auto", "q_auto"))


def url_name(filename: str) -> str:
    """A URL-safe SEO name from an original filename (``My Cat.JPG`` → ``My-Cat``): the
    ``<seo>`` of minted URLs, and the only one an unsigned URL may use."""
    stem = filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1].rsplit(".", 1)[0]
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_stem).strip("-._")[:80]
    return slug or "image"


def unsigned_allowed(path: str, filename: str, named: Named) -> bool:
    """True when the raw ``path`` is one of the unsigned URLs above for an image whose
    original filename is ``filename`` (the caller has checked that it is public)."""
    parts = path.split("/")  # "", "i", id, stage, last
    if len(parts) != 5:
        return False
    first, *rest = parts[3].split(",")
    if not first.startswith("t_") or tuple(rest) not in SUFFIXES:
        return False
    formats = named.unsigned.get(first[2:])
    seo, _, ext = parts[4].rpartition(".")
    return formats is not None and ext in formats and seo == url_name(filename)
