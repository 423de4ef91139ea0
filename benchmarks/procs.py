"""Processes the harness starts (each in its own process group) and /proc accounting.

Every server and every wrk runs in a new session; ``Group.stop()`` signals the whole group
(SIGTERM, then SIGKILL after a grace period). ``Registry.stop_all()`` runs from a finally
block, so no server outlives the harness on success, error or Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

CLK_TCK = os.sysconf("SC_CLK_TCK")


class Group:
    """One started command and its process group."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log: Path | None = None,
    ) -> None:
        self.name = name
        self.log = log
        out: IO[bytes] | int = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                list(argv),
                env=dict(env) if env is not None else None,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            if not isinstance(out, int):
                out.close()
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if self.proc.poll() is not None and not _group_alive(self.pid):
                    return
                time.sleep(0.05)

    def tail(self, lines: int = 20) -> str:
        if not self.log or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def group_alive(pgid: int) -> bool:
    """Whether any process is still in process group ``pgid``."""
    return _group_alive(pgid)


def _group_alive(pgid: int) -> bool:
    for pid in _pids():
        try:
            if os.getpgid(pid) == pgid:
                return True
        except ProcessLookupError:
            continue
    return False


class Registry:
    """Every group started, stopped in reverse order by ``stop_all``."""

    def __init__(self) -> None:
        self.groups: list[Group] = []
        self.started: list[int] = []  # every process group id ever started (for checks)

    def start(self, name: str, argv: Sequence[str], **kwargs: object) -> Group:
        group = Group(name, argv, **kwargs)  # type: ignore[arg-type]
        self.groups.append(group)
        if name != "wrk":
            self.started.append(group.pid)
        return group

    def stop(self, group: Group) -> None:
        group.stop()
        if group in self.groups:
            self.groups.remove(group)

    def stop_all(self) -> None:
        while self.groups:
            self.groups.pop().stop()


# ---- /proc ---------------------------------------------------------------------------------


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _stat(pid: int) -> list[str] | None:
    return stat_fields(f"/proc/{pid}/stat")


def stat_fields(path: str) -> list[str] | None:
    """The fields after ``comm`` of a process's or thread's ``stat`` file (None: gone)."""
    text = _read(path)
    if text is None:
        return None
    # comm may hold spaces and parentheses: split after the last ')'.
    return text[text.rindex(")") + 2 :].split()


def context_switches(path: str) -> tuple[int, int] | None:
    """(voluntary, involuntary) context switches from a process's or thread's ``status``
    file (None: gone)."""
    text = _read(path)
    if text is None:
        return None
    found = dict(line.split(":", 1) for line in text.splitlines() if "ctxt_switches" in line)
    return int(found["voluntary_ctxt_switches"]), int(found["nonvoluntary_ctxt_switches"])


def _read(path: str) -> str | None:
    """A /proc file's text; None when its process or thread has ended."""
    try:
        return Path(path).read_text()
    except OSError:
        return None


def tree(*roots: int) -> list[int]:
    """The ``roots`` and all their descendants (by parent pid): one server's processes, or
    every group of a server made of several (thumbor's instances and their nginx)."""
    children: dict[int, list[int]] = {}
    for pid in _pids():
        fields = _stat(pid)
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(pid)
    found: list[int] = []
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def cpu_seconds(*roots: int) -> float:
    """utime + stime of every live process in the trees, plus cutime + cstime (children that
    exited and were waited for, e.g. thumbor's gifsicle runs), in seconds."""
    ticks = 0
    for pid in tree(*roots):
        fields = _stat(pid)
        if fields is not None:
            ticks += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime (14-17)
    return ticks / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / CLK_TCK


def children_cpu_seconds() -> float:
    """CPU of this process's exited, waited-for children (wrk runs)."""
    t = os.times()
    return t.children_user + t.children_system


def self_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def rss_bytes(*roots: int) -> int:
    """Sum of VmRSS over the trees."""
    return sum(process_rss(*roots))


def process_rss(*roots: int) -> list[int]:
    """VmRSS of each process of the trees."""
    found = []
    for pid in tree(*roots):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    found.append(int(line.split()[1]) * 1024)
                    break
        except OSError:
            continue
    return found


class RssSampler:
    """Samples the trees' RSS every ``interval`` seconds in a thread: ``peak`` is the largest
    sum over them, ``peak_process`` the largest single process seen."""

    def __init__(self, *roots: int, interval: float = 0.1) -> None:
        self.roots = roots
        self.interval = interval
        self.peak = 0
        self.peak_process = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        sizes = process_rss(*self.roots)
        self.peak = max(self.peak, sum(sizes))
        self.peak_process = max(self.peak_process, *sizes, 0)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
