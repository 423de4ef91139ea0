"""imgorigin: a URL-signed, on-the-fly image origin for CDNs."""

from __future__ import annotations

__version__ = "0.1.0"
