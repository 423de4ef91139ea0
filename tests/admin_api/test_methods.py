"""A method a path does not have is 405 with the contract's error body and an ``Allow`` that
names every method the path has (RFC 9110 §15.5.6); before, a path with one route per method
named only its first route's methods (``DELETE /api/images`` said ``Allow: POST``)."""

from __future__ import annotations

import re
from collections import defaultdict

from admin_api.app import API
from tests.admin_api.conftest import Api, assert_error

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def paths() -> dict[str, set[str]]:
    found: defaultdict[str, set[str]] = defaultdict(set)
    for path, method, _ in API:
        found[path].add(method)
    return found


async def test_a_405_names_every_method_of_its_path(local_api: Api) -> None:
    _, headers = await local_api.user()
    for path, methods in paths().items():
        concrete = "/api" + re.sub(r"\{[a-z_]+\}", "a" * 32, path)
        allowed = methods | ({"HEAD"} if "GET" in methods else set())
        for method in sorted(set(METHODS) - methods):
            answer = await local_api.http.request(method, concrete, headers=headers)
            assert_error(answer, 405, "method_not_allowed")
            named = {m.strip() for m in answer.headers["allow"].split(",")}
            assert named == allowed, (method, path)
