"""W6's upstream: the loopback website that the remote-source workloads fetch from.

One nginx (``nginx.one_file_config``) answers W1's photo, the same 4000×3000 JPEG that W1
renders, for every ``/photos/<object>/w1.jpg``. W6-cold names a new object on every request,
so every server has to fetch; the bytes never change, so every fetch costs the same. The
harness starts it once per run, before the servers and outside their process trees, so its
CPU time is not charged to any server (``measure`` reports it as ``upstream_cores`` and
leaves it out of the other load).

How each server is pointed at it (``benchmarks/servers.py``):

- imgorigin: a ``SOURCES_FILE`` with one ``http`` source, ``bench``, whose ``base_url`` is
  ``http://127.0.0.1:PORT/photos/`` (``sources_config``), plus
  ``FETCH_ALLOW_LOOPBACK_FOR_TESTS=1``. Without that switch its fetcher refuses loopback
  addresses. imgorigin refuses the switch in production, which is why the harness runs it in
  development mode, as it does for every workload;
- thumbor: its HTTP loader, ``127.0.0.1`` its one allowed source, with URLs naming
  ``127.0.0.1:PORT/photos/<object>/w1.jpg``;
- IPX: its http storage, ``127.0.0.1`` its one allowed domain, with URLs naming
  ``http://127.0.0.1:PORT/photos/<object>/w1.jpg``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import nginx
from benchmarks.procs import Group, Registry
from benchmarks.workloads import Params, Workload

LOCATION = "/photos/"
SOURCE = "bench"  # the source's name in imgorigin's SOURCES_FILE
TTL_SECONDS = 3600  # imgorigin revalidates a kept object after this long: never within a run
MAX_AGE_SECONDS = 86_400


@dataclass(frozen=True)
class Upstream:
    """The running static server: where it listens, and its process group."""

    port: int
    group: Group

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"


def object_key(workload: Workload, p: Params) -> str:
    """The object that a W6 parameter set names, as a path in the source:
    ``<object>/w1.jpg``."""
    return f"{p['object']}/{workload.source}"


def object_path(workload: Workload, p: Params) -> str:
    """The object's path on the upstream: ``/photos/<object>/w1.jpg``."""
    return LOCATION + object_key(workload, p)


def sources_config(host: str) -> dict[str, Any]:
    """imgorigin's ``SOURCES_FILE`` for W6: the upstream as the ``http`` source ``bench``."""
    return {
        SOURCE: {
            "type": "http",
            "base_url": f"http://{host}{LOCATION}",
            "ttl": TTL_SECONDS,
            "max_age": MAX_AGE_SECONDS,
        }
    }


def write_sources(path: Path, host: str) -> Path:
    path.write_text(json.dumps(sources_config(host), indent=1) + "\n")
    return path


def describe(site: Upstream, photo: Path) -> dict[str, Any]:
    """What bench.json records about the upstream."""
    return {
        "server": nginx.version(),
        "port": site.port,
        "paths": f"{LOCATION}<object>/{photo.name}",
        "bytes": photo.stat().st_size,
        "imgorigin_sources_file": sources_config(site.host),
    }


def start(registry: Registry, work: Path, photo: Path) -> Upstream:
    """The static server answering ``photo`` under every object path, once it does. Run as
    root, nginx's workers are ``nobody``: the photo and its folders must be readable by
    all (``benchmarks/.peers/images`` is), else this says so instead of a run of 403s."""
    # servers imports this module: its helpers are imported here, when the harness runs.
    from benchmarks.servers import free_port, http_get, wait_ready

    port = free_port()
    text = nginx.one_file_config(port, photo, LOCATION)
    group = nginx.run(registry, work / "nginx-upstream", text, name="upstream")
    probe = LOCATION + "ready/" + photo.name
    wait_ready(group, port, probe)
    status, _, body = http_get(port, probe)
    if status != 200 or len(body) != photo.stat().st_size:
        raise RuntimeError(
            f"the W6 upstream answers {probe} with {status} ({len(body)} bytes): can "
            f"nginx's workers read {photo}?"
        )
    return Upstream(port, group)
