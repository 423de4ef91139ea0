"""The guarded fetcher: the one way imgorigin makes an HTTP request to a URL a user or an
operator gave it (docs/fetching.md). ``guard`` decides what may be fetched; ``client``
fetches it. Nothing else in the codebase opens an HTTP connection (a test greps for it);
object storage goes through aiobotocore to the operator's configured endpoint."""

from origin.fetch.client import Fetched, Limits, Resolve, fetch, post, system_resolve, vet
from origin.fetch.guard import Policy, classify

__all__ = [
    "Fetched",
    "Limits",
    "Policy",
    "Resolve",
    "classify",
    "fetch",
    "post",
    "system_resolve",
    "vet",
]
