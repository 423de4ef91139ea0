"""The nginx the harness puts in front of thumbor's instances (``benchmarks/nginx.py``), run
for real in front of two small HTTP/1.1 servers standing in for the instances: requests are
spread over both, connections to them are kept alive and reused, nothing is answered from a
cache, and the registry leaves no nginx process behind."""

from __future__ import annotations

import http.client
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from benchmarks import nginx
from benchmarks.procs import Registry, group_alive
from benchmarks.servers import free_port, wait_ready


class Instance(ThreadingHTTPServer):
    """A stand-in for one thumbor instance: answers its name after ``delay`` seconds and
    records each request's path and the client port it came from."""

    daemon_threads = True

    def __init__(self, name: str, delay: float) -> None:
        self.name = name
        self.delay = delay
        self.seen: list[tuple[str, int]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as tornado

    def do_GET(self) -> None:
        server = self.server
        assert isinstance(server, Instance)
        with server.lock:
            server.seen.append((self.path, self.client_address[1]))
        time.sleep(server.delay)
        body = server.name.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "public, max-age=86400")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def instances(count: int, delay: float) -> Iterator[list[Instance]]:
    servers = [Instance(f"instance-{i}", delay) for i in range(count)]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    try:
        yield servers
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()


def get_many(port: int, paths: list[str], clients: int) -> list[str]:
    """Each of ``clients`` threads sends its share of ``paths`` over one kept-alive
    connection; the bodies, in order."""

    def client(share: list[str]) -> list[str]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            bodies = []
            for path in share:
                conn.request("GET", path)
                answer = conn.getresponse()
                assert answer.status == 200
                bodies.append(answer.read().decode())
            return bodies
        finally:
            conn.close()

    shares = [paths[i::clients] for i in range(clients)]
    with ThreadPoolExecutor(clients) as pool:
        return [body for bodies in pool.map(client, shares) for body in bodies]


def test_nginx_spreads_requests_and_keeps_connections(tmp_path: Path) -> None:
    if nginx.binary() is None:
        if os.environ.get("REQUIRE_ALL_BACKENDS") == "1":
            pytest.fail("REQUIRE_ALL_BACKENDS=1 but nginx is not installed")
        pytest.skip("nginx is not installed (apt-get install nginx)")
    registry = Registry()
    with instances(2, delay=0.02) as upstreams:
        port = free_port()
        try:
            group = nginx.start(
                registry, tmp_path / "nginx", port, [u.port for u in upstreams], name="thumbor"
            )
            wait_ready(group, port, "/healthcheck")
            paths = ["/same/path"] * 40 + [f"/distinct/{i}" for i in range(40)]
            bodies = get_many(port, paths, clients=4)
        finally:
            registry.stop_all()
        assert not group_alive(group.pid), "nginx outlived Registry.stop_all()"
    assert len(bodies) == 80
    counts = [len(u.seen) for u in upstreams]
    # Every request reached an instance (the readiness probes too): no cache answered the
    # 40 repeats of one path, though the answer says max-age=86400.
    assert sum(counts) >= 80
    assert sum(1 for u in upstreams for p, _ in u.seen if p == "/same/path") == 40
    # least_conn with 4 clients and 2 instances: both work, neither takes almost all.
    assert min(counts) >= 20, counts
    # Keep-alive to the instances: far fewer connections than requests.
    for u in upstreams:
        connections = {client_port for _, client_port in u.seen}
        assert len(connections) <= len(u.seen) // 4, (len(connections), len(u.seen))


def test_nginx_config_is_the_documented_one(tmp_path: Path) -> None:
    """The configuration says what docs/performance.md says: least_conn, a keep-alive pool
    of 64 over HTTP/1.1 with the Connection header cleared, no cache, no disk buffering."""
    text = nginx.config(8080, [9001, 9002, 9003], name="thumbor")
    assert "least_conn;" in text
    assert [line.strip() for line in text.splitlines() if "server 127.0.0.1:" in line] == [
        "server 127.0.0.1:9001;",
        "server 127.0.0.1:9002;",
        "server 127.0.0.1:9003;",
    ]
    assert "keepalive 64;" in text
    assert "proxy_http_version 1.1;" in text
    assert 'proxy_set_header Connection "";' in text
    assert "proxy_cache" not in text
    assert "proxy_max_temp_file_size 0;" in text
    assert "listen 127.0.0.1:8080;" in text
