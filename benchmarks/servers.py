"""The servers under test: how each is installed, configured, started and addressed.

Every server gets the same machine (both cores) and listens on 127.0.0.1 only:

- imgorigin: ``imgorigin serve --workers N`` (N = cores; each worker uvicorn with uvloop and
  httptools on its own ``SO_REUSEPORT`` socket), ``CONCURRENCY`` left at its default (= cores),
  ``MALLOC_ARENA_MAX=2``. Cold mode: ``CACHE_MAX_BYTES=0`` and a
  fresh storage folder and database; hot mode (W4): the default in-process cache. The
  originals are stored as an upload stores them, working copies included
  (``--no-working-copies``: the originals alone). Mode "empty" (the eager step,
  ``benchmarks/eager.py``): as cold, with nothing stored (the step uploads through the API).
- thumbor (PyPI, own venv), its production layout: one single-process instance per core
  (``ENGINE_THREADPOOL_SIZE=1`` each) behind an nginx the harness starts (``least_conn``,
  keep-alive to the instances, no cache). File loader, no original storage, signed URLs;
  result storage off (cold) or file result storage shared by the instances (hot); gifsicle
  engine for animated GIFs when ``gifsicle`` is on PATH.
- thumbor-1p: the same thumbor as one process with ``ENGINE_THREADPOOL_SIZE=2`` (the
  earlier comparison, kept as a second row).
- IPX 3 (npm, sharp with its bundled libvips): node cluster with 2 workers, fs storage.

W6 (a remote source, ``benchmarks/upstream.py``) starts each server once per row, in mode
"remote-cold" or "remote-warm", with caches as in cold mode and with that server's way of
reading from the loopback upstream configured: imgorigin's ``SOURCES_FILE`` (its source cache
at its defaults: each object kept in storage with a row, bounded at 1 GiB); thumbor's HTTP
loader, with the source storage that makes it strongest for the row
(``THUMBOR_REMOTE_STORAGE``); IPX's http storage (IPX keeps no source, so every request
fetches).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import nginx, upstream
from benchmarks.procs import Group, Registry
from benchmarks.seed import IMAGE_IDS, seed
from benchmarks.workloads import Params, Workload

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "benchmarks" / ".peers"
VENV_BIN = Path(sys.executable).parent
THUMBOR_SPEC = "thumbor==7.8.*"
IPX_SPEC = "ipx@3"
SIGNING_SECRET = "benchmark-signing-secret-0123456789abcdef"
READY_SECONDS = 90.0
CORES = os.cpu_count() or 1
THUMBOR_THREADPOOL = 1  # per instance of the strong layout (measured: docs/performance.md)
# thumbor's source storage in W6, its strongest per row (measured: docs/performance.md, W6):
# none when every object is new (storing one costs a 4 MB write that is never read back),
# its default file storage when the objects repeat (reading the kept file costs less than
# fetching it again).
THUMBOR_REMOTE_STORAGE = {
    "remote-cold": "thumbor.storages.no_storage",
    "remote-warm": "thumbor.storages.file_storage",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int, path: str, timeout: float = 60.0) -> tuple[int, dict[str, str], bytes]:
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def wait_ready(group: Group, port: int, path: str) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if not group.alive():
            raise RuntimeError(f"{group.name} exited during start-up:\n{group.tail()}")
        try:
            status, _, _ = http_get(port, path, timeout=2.0)
            if status < 500:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{group.name} not ready after {READY_SECONDS:.0f}s:\n{group.tail()}")


def is_remote(mode: str) -> bool:
    """Whether a server mode is W6's ("remote-cold", "remote-warm")."""
    return mode.startswith("remote-")


@dataclass
class Server(ABC):
    """A server under test; subclasses fill in install, start and path."""

    name: str = ""
    note: str = ""
    modes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    upstream: str = ""  # W6's upstream (host:port), set by the harness once it runs

    def install(self, log: Path) -> str | None:
        """Install if needed; return None when usable, else the reason it is not."""
        return None

    def supports(self, workload: Workload) -> bool:
        return not workload.ours_only

    def params(self, workload: Workload) -> list[Params]:
        """The parameter sets of a run (the varied pool unless this server cannot take it)."""
        return workload.params()

    @abstractmethod
    def start(self, registry: Registry, work: Path, images: dict[str, Path], mode: str) -> int:
        """Start the server for ``mode`` (``Workload.server_mode``); return its port."""

    @abstractmethod
    def path(self, workload: Workload, p: Params) -> str:
        """The request path (with query) of one parameter set."""


# ---- imgorigin -------------------------------------------------------------------------------


class Imgorigin(Server):
    def supports(self, workload: Workload) -> bool:
        return True

    def __init__(self, working_copies: bool = True, settings: dict[str, str] | None = None) -> None:
        super().__init__(
            name="imgorigin",
            note=f"{CORES} workers (SO_REUSEPORT), CONCURRENCY default ({CORES})"
            + ("" if working_copies else ", no working copies"),
        )
        self.working_copies = working_copies
        self.settings = settings or {}  # added to every start's environment (the eager step's)

    def env(self, data: Path, cache: bool, sources: Path | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CACHE_MAX_BYTES")}
        env.update(
            IMGORIGIN_ENV="development",
            DATABASE_URL=f"sqlite:///{data / 'meta.db'}",
            STORAGE_TYPE="local",
            STORAGE_PATH=str(data / "storage"),
            SECRETS_FILE=str(data / "secrets.json"),
            JWT_SECRET="benchmark-jwt-secret-0123456789abcdef0123456789",
            URL_SIGNING_KEYS=f"bench:{SIGNING_SECRET}",
            MALLOC_ARENA_MAX="2",
        )
        if not cache:
            env["CACHE_MAX_BYTES"] = "0"
        if sources is not None:  # W6: the upstream on loopback (development mode only)
            env.update(SOURCES_FILE=str(sources), FETCH_ALLOW_LOOPBACK_FOR_TESTS="1")
        env.update(self.settings)
        return env

    def prepare(self, data: Path, images: dict[str, Path], cache: bool) -> dict[str, str]:
        """A fresh database and storage folder under ``data``, migrated and seeded; the
        server's environment."""
        env = self._migrated(data, cache=cache)
        seed(env, images, self.working_copies)
        return env

    def prepare_remote(self, data: Path) -> dict[str, str]:
        """W6: a fresh, migrated database and storage folder with nothing stored (every
        original is the upstream's), the caches off as in cold mode, and a ``SOURCES_FILE``
        naming the upstream."""
        if not self.upstream:
            raise RuntimeError("W6 needs its upstream running (benchmarks/upstream.py)")
        return self._migrated(data, cache=False, remote=True)

    def _migrated(self, data: Path, *, cache: bool, remote: bool = False) -> dict[str, str]:
        """``data`` emptied, the environment for it, the database migrated."""
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        sources = upstream.write_sources(data / "sources.json", self.upstream) if remote else None
        env = self.env(data, cache=cache, sources=sources)
        subprocess.run(
            [str(VENV_BIN / "imgorigin"), "migrate"], env=env, check=True, capture_output=True
        )
        return env

    def start(self, registry: Registry, work: Path, images: dict[str, Path], mode: str) -> int:
        data = work / f"imgorigin-{mode}"
        if is_remote(mode):
            env = self.prepare_remote(data)
        elif mode == "empty":  # the eager step (benchmarks/eager.py): it uploads through the API
            env = self._migrated(data, cache=False)
        else:
            env = self.prepare(data, images, cache=(mode == "hot"))
        port = free_port()
        argv = [
            str(VENV_BIN / "imgorigin"),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(CORES),
        ]
        group = registry.start(
            f"imgorigin-{mode}", argv, env=env, log=work / f"imgorigin-{mode}.log"
        )
        wait_ready(group, port, "/healthz")
        self.group = group
        return port

    def path(self, workload: Workload, p: Params) -> str:
        from origin.signing import sign_url

        if workload.kind == "fit":
            chain = f"w_{p['w']},h_{p['h']},c_fit"
            if "q" in p:
                chain += f",q_{p['q']}"
        elif workload.kind == "face":
            chain = f"w_{p['w']},h_{p['h']},c_fill,g_face,e_blur_faces,q_{p['q']}"
        else:
            chain = f"x_{p['x']},y_{p['y']},w_{p['cw']},h_{p['ch']},c_crop,r_{p['r']}"
        if workload.remote:  # /r/<source>/<stages>/-/<object path>@<format>
            key = upstream.object_key(workload, p)
            return sign_url(f"/r/{upstream.SOURCE}/{chain}/-/{key}@{workload.ext}", SIGNING_SECRET)
        image = IMAGE_IDS[workload.source]
        return sign_url(
            f"/i/{image}/{chain}/{workload.name.lower()}.{workload.ext}", SIGNING_SECRET
        )


# ---- thumbor ---------------------------------------------------------------------------------


def thumbor_signature(path: str, key: str = SIGNING_SECRET) -> str:
    """thumbor's URL signature (its default signer, libthumbor's ``base64_hmac_sha1``): the
    url-safe base64 of HMAC-SHA1 over the path after the signature, padding kept."""
    digest = hmac.new(key.encode(), path.encode(), hashlib.sha1).digest()
    return base64.urlsafe_b64encode(digest).decode()


class Thumbor(Server):
    """thumbor from PyPI in its own venv, signed URLs (``SECURITY_KEY``, no unsafe URLs),
    file loader, no original storage; result storage off (cold) or file result storage
    shared by every instance (hot); gifsicle engine for animated GIFs when ``gifsicle`` is on
    PATH. W6 (``remote-*``): the HTTP loader at its defaults, the upstream its one allowed
    source, ``THUMBOR_REMOTE_STORAGE`` of the row shared by the instances, result storage
    off.
    ``instances`` > 1: that many single-process ``thumbor -p PORT`` behind an nginx the
    harness starts (``benchmarks.nginx``), thumbor's production layout; 1: the process alone."""

    def __init__(self, name: str, instances: int, threadpool: int) -> None:
        layout = (
            f"{instances} processes behind nginx (least_conn, keep-alive)"
            if instances > 1
            else "1 process"
        )
        super().__init__(name=name, note=f"{layout}, ENGINE_THREADPOOL_SIZE={threadpool}")
        self.instances = instances
        self.threadpool = threadpool
        self.venv = PEERS / "thumbor"

    def install(self, log: Path) -> str | None:
        if self.instances > 1 and nginx.binary() is None:
            return "nginx is not installed (apt-get install nginx)"
        binary = self.venv / "bin" / "thumbor"
        if not binary.exists():
            with log.open("ab") as out:
                for argv in (
                    [sys.executable, "-m", "venv", "--clear", str(self.venv)],
                    [str(self.venv / "bin" / "pip"), "install", "-q", THUMBOR_SPEC],
                ):
                    if subprocess.run(argv, stdout=out, stderr=out, check=False).returncode:
                        return f"`{' '.join(argv[-2:])}` failed (see {log})"
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True)
        if done.returncode:
            return f"thumbor --version failed: {done.stderr.strip()[-200:]}"
        self.version = done.stdout.strip()
        if self.instances > 1:
            self.version += f", {nginx.version()}"
        gifsicle = shutil.which("gifsicle")
        self.note += ", gifsicle engine for GIF" if gifsicle else ", no gifsicle: PIL for GIF"
        return None

    def configuration(self, work: Path, sources: Path, mode: str) -> Path:
        """thumbor.conf for ``mode``, shared by the instances (so is the result storage)."""
        conf = work / f"{self.name}-{mode}.conf"
        results = work / f"{self.name}-results-{mode}"
        shutil.rmtree(results, ignore_errors=True)
        lines = {
            "LOADER": "'thumbor.loaders.file_loader'",
            "FILE_LOADER_ROOT_PATH": repr(str(sources)),
            "STORAGE": "'thumbor.storages.no_storage'",
            "SECURITY_KEY": repr(SIGNING_SECRET),
            "ALLOW_UNSAFE_URL": "False",
            "ENGINE_THREADPOOL_SIZE": str(self.threadpool),
            "QUALITY": "80",
            "USE_GIFSICLE_ENGINE": repr(shutil.which("gifsicle") is not None),
            "MAX_AGE": "86400",
        }
        if mode == "hot":
            lines.update(
                RESULT_STORAGE="'thumbor.result_storages.file_storage'",
                RESULT_STORAGE_FILE_STORAGE_ROOT_PATH=repr(str(results)),
                RESULT_STORAGE_EXPIRATION_SECONDS="0",
            )
        else:
            lines["RESULT_STORAGE"] = "None"
        if is_remote(mode):
            originals = work / f"{self.name}-originals-{mode}"
            shutil.rmtree(originals, ignore_errors=True)
            lines.update(
                LOADER="'thumbor.loaders.http_loader'",
                ALLOWED_SOURCES=repr([self.upstream.split(":")[0]]),
                STORAGE=repr(THUMBOR_REMOTE_STORAGE[mode]),
                FILE_STORAGE_ROOT_PATH=repr(str(originals)),
            )
            del lines["FILE_LOADER_ROOT_PATH"]
        conf.write_text("".join(f"{k} = {v}\n" for k, v in lines.items()))
        return conf

    def start(self, registry: Registry, work: Path, images: dict[str, Path], mode: str) -> int:
        conf = self.configuration(work, images["w1.jpg"].parent, mode)
        ports = [free_port() for _ in range(self.instances)]
        binary = str(self.venv / "bin" / "thumbor")
        groups = [
            registry.start(
                f"{self.name}-{mode}-{i}",
                [binary, "-i", "127.0.0.1", "-p", str(port), "-c", str(conf), "-l", "error"],
                log=work / f"{self.name}-{mode}-{i}.log",
            )
            for i, port in enumerate(ports)
        ]
        for group, port in zip(groups, ports, strict=True):
            wait_ready(group, port, "/healthcheck")
        if self.instances == 1:
            return ports[0]
        port = free_port()
        balancer = nginx.start(
            registry, work / f"nginx-{self.name}-{mode}", port, ports, name="thumbor"
        )
        wait_ready(balancer, port, "/healthcheck")
        return port

    def path(self, workload: Workload, p: Params) -> str:
        filters = []
        if workload.kind == "fit":
            size = f"fit-in/{p['w']}x{p['h']}/"
            if "q" in p:
                filters.append(f"quality({p['q']})")
        else:
            x, y = p["x"], p["y"]
            size = f"{x}x{y}:{x + p['cw']}x{y + p['ch']}/"
            filters.append(f"rotate({p['r']})")
        if workload.ext != workload.source.rsplit(".", 1)[1]:
            filters.append(f"format({workload.ext})")
        f = f"filters:{':'.join(filters)}/" if filters else ""
        image = workload.source
        if workload.remote:  # the HTTP loader's form: host:port/path, scheme left out
            image = self.upstream + upstream.object_path(workload, p)
        signed = f"{size}{f}{image}"
        return f"/{thumbor_signature(signed)}/{signed}"


# ---- IPX -------------------------------------------------------------------------------------


class Ipx(Server):
    def __init__(self) -> None:
        super().__init__(name="ipx", note="node cluster, 2 workers, sharp defaults")
        self.folder = PEERS / "ipx"

    def install(self, log: Path) -> str | None:
        node, npm = shutil.which("node"), shutil.which("npm")
        if not node or not npm:
            return "node/npm not found"
        self.folder.mkdir(parents=True, exist_ok=True)
        if not (self.folder / "node_modules" / "ipx" / "package.json").exists():
            (self.folder / "package.json").write_text('{"name": "ipx-peer", "private": true}\n')
            with log.open("ab") as out:
                argv = [npm, "install", "--no-audit", "--no-fund", IPX_SPEC]
                done = subprocess.run(argv, cwd=self.folder, stdout=out, stderr=out, check=False)
            if done.returncode:
                return f"npm install {IPX_SPEC} failed (see {log})"
        shutil.copy(ROOT / "benchmarks" / "peers" / "ipx_server.mjs", self.folder / "server.mjs")
        meta = json.loads((self.folder / "node_modules" / "ipx" / "package.json").read_text())
        self.version = f"ipx {meta['version']}"
        return None

    def supports(self, workload: Workload) -> bool:
        return workload.mode == "cold" and not workload.ours_only  # no result cache: no W4

    def start(self, registry: Registry, work: Path, images: dict[str, Path], mode: str) -> int:
        port = free_port()
        env = dict(os.environ, PORT=str(port), WORKERS="2", IPX_DIR=str(images["w1.jpg"].parent))
        if is_remote(mode):  # its http storage, the upstream's host the one allowed domain
            env["IPX_HTTP_DOMAINS"] = self.upstream.split(":")[0]
        argv = [shutil.which("node") or "node", str(self.folder / "server.mjs")]
        group = registry.start(
            f"ipx-{mode}", argv, env=env, cwd=self.folder, log=work / f"ipx-{mode}.log"
        )
        wait_ready(group, port, "/")
        return port

    def path(self, workload: Workload, p: Params) -> str:
        fmt = {"jpg": "jpeg"}.get(workload.ext, workload.ext)
        if workload.kind == "fit":
            mods = f"s_{p['w']}x{p['h']},fit_inside"
            if "q" in p:
                mods += f",q_{p['q']}"
        else:
            mods = f"extract_{p['x']}_{p['y']}_{p['cw']}_{p['ch']},rotate_{p['r']}"
        if workload.remote:  # an id with a scheme goes to the http storage
            return f"/{mods},f_{fmt}/http://{self.upstream}{upstream.object_path(workload, p)}"
        return f"/{mods},f_{fmt}/{workload.source}"


def all_servers(
    working_copies: bool = True, thumbor_threadpool: int = THUMBOR_THREADPOOL
) -> list[Server]:
    """imgorigin, the peers' strongest layouts, then thumbor as one process (the earlier
    comparison, kept as a second row)."""
    return [
        Imgorigin(working_copies),
        Thumbor("thumbor", instances=CORES, threadpool=thumbor_threadpool),
        Thumbor("thumbor-1p", instances=1, threadpool=2),
        Ipx(),
    ]
