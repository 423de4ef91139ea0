"""nginx as the harness runs it: a load balancer on loopback in front of several instances
of a peer (thumbor's production layout: one single-process instance per core behind nginx),
and W6's upstream, a static server answering one file under many paths (``one_file_config``).

The configuration is generated (``config``): one worker, no access log, an ``upstream``
with ``least_conn`` (a request goes to the instance with the fewest open requests, so a
slow render never queues a fast one behind it while another instance idles) and a pool of
64 keep-alive connections to the instances (``proxy_http_version 1.1`` and an empty
``Connection`` header, without which nginx would open a connection per request). Nothing is
cached: no ``proxy_cache``, and answers are buffered in memory only (up to 2 MB, more than
any workload's answer; ``proxy_max_temp_file_size 0``: never spooled to disk). It runs in
the foreground (``daemon off``) under a prefix folder of its own, as one process group of
the harness's ``Registry``: stopped with the rest, on success, error or Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from benchmarks.procs import Group, Registry

UPSTREAM_KEEPALIVE = 64
READ_TIMEOUT_SECONDS = 300  # a W5 or W3 answer under 16 connections can take several seconds


def binary() -> str | None:
    found = shutil.which("nginx")
    if found is None and os.access("/usr/sbin/nginx", os.X_OK):
        found = "/usr/sbin/nginx"
    return found


def version() -> str:
    """``nginx/1.22.1`` (nginx prints its version on stderr), or "" without nginx."""
    found = binary()
    if found is None:
        return ""
    done = subprocess.run([found, "-v"], capture_output=True, text=True, check=False)
    return (done.stderr or done.stdout).strip().rsplit(" ", 1)[-1]


HEAD = """daemon off;
worker_processes 1;
pid logs/nginx.pid;
error_log logs/error.log warn;

events {
    worker_connections 1024;
}
"""
TEMP_PATHS = """    client_body_temp_path tmp/client_body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
"""


def config(port: int, upstreams: Sequence[int], name: str = "peer") -> str:
    """The configuration of a balancer listening on 127.0.0.1:``port`` in front of
    127.0.0.1:each of ``upstreams`` (paths relative to nginx's ``-p`` prefix folder)."""
    servers = "".join(f"        server 127.0.0.1:{p};\n" for p in upstreams)
    return f"""{HEAD}
http {{
    upstream {name} {{
        least_conn;
{servers}        keepalive {UPSTREAM_KEEPALIVE};
        keepalive_requests 1000000;
    }}

    access_log off;
    server_tokens off;
    keepalive_requests 1000000;
{TEMP_PATHS}
    server {{
        listen 127.0.0.1:{port};

        location / {{
            proxy_pass http://{name};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_buffer_size 64k;
            proxy_buffers 32 64k;
            proxy_busy_buffers_size 128k;
            proxy_max_temp_file_size 0;
            proxy_read_timeout {READ_TIMEOUT_SECONDS}s;
        }}
    }}
}}
"""


def one_file_config(port: int, file: Path, location: str) -> str:
    """A static server on 127.0.0.1:``port`` answering ``file`` (a JPEG) for every
    ``<location><one segment>/<name>.jpg``, and 404 for anything else: any number of
    distinct remote objects with the same bytes, so every fetch costs the same and none is
    the same object twice. ``sendfile`` from the page cache; the ETag and Last-Modified are
    the file's (the same for every path, which no server may treat as one object)."""
    pattern = "^" + location.rstrip("/") + r"/[^/]+/[^/]+\.jpg$"
    return f"""{HEAD}
http {{
    access_log off;
    server_tokens off;
    keepalive_requests 1000000;
    sendfile on;
    tcp_nopush on;
{TEMP_PATHS}
    server {{
        listen 127.0.0.1:{port};

        location ~ {pattern} {{
            root {file.parent};
            try_files /{file.name} =404;
            default_type image/jpeg;
        }}

        location / {{
            return 404;
        }}
    }}
}}
"""


def prepare_text(prefix: Path, text: str) -> Path:
    """A fresh prefix folder (logs/, tmp/ writable by nginx's unprivileged workers) holding
    ``text`` as its ``nginx.conf``; returns the configuration's path."""
    shutil.rmtree(prefix, ignore_errors=True)
    prefix.mkdir(parents=True)
    prefix.chmod(0o755)
    for folder in ("logs", "tmp"):
        (prefix / folder).mkdir()
        (prefix / folder).chmod(0o777)
    conf = prefix / "nginx.conf"
    conf.write_text(text)
    return conf


def start(
    registry: Registry,
    prefix: Path,
    port: int,
    upstreams: Sequence[int],
    *,
    name: str = "peer",
    log: Path | None = None,
) -> Group:
    """nginx in the foreground as one process group of ``registry`` (master and worker)."""
    return run(registry, prefix, config(port, upstreams, name), name=name, log=log)


def run(
    registry: Registry, prefix: Path, text: str, *, name: str, log: Path | None = None
) -> Group:
    """nginx with the configuration ``text``, in the foreground, as one process group of
    ``registry`` (master and worker)."""
    found = binary()
    if found is None:
        raise RuntimeError("nginx is not installed (apt-get install nginx)")
    conf = prepare_text(prefix, text)
    argv = [found, "-p", f"{prefix}/", "-c", str(conf)]
    return registry.start(f"nginx-{name}", argv, log=log or prefix / "logs" / "stderr.log")
