"""Process helpers: free ports, supervised child processes with log files, waiting."""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path


class PlatformError(RuntimeError):
    """A part of the test platform could not be started or is not healthy."""


LOWEST_PORT = 10000
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def free_port() -> int:
    """A TCP port free right now (see `free_ports`)."""
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """`n` TCP ports free on every address right now, for servers about to start.

    Taken below the kernel's range for outgoing connections, which could otherwise take a
    port between its choice here and its server's bind, and never one handed out before in
    this process: a server started later may not have bound its port yet."""
    ceiling = int(EPHEMERAL_RANGE.read_text().split()[0]) if EPHEMERAL_RANGE.exists() else 32768
    ports: list[int] = []
    with _handed_out_lock:
        start = random.randrange(LOWEST_PORT, ceiling)
        for candidate in itertools.chain(range(start, ceiling), range(LOWEST_PORT, start)):
            if candidate in _handed_out:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                try:
                    probe.bind(("", candidate))
                except OSError:
                    continue
            _handed_out.add(candidate)
            ports.append(candidate)
            if len(ports) == n:
                return ports
    raise PlatformError(f"no {n} free TCP ports between {LOWEST_PORT} and {ceiling}")


def tail(path: Path | str, lines: int = 40) -> str:
    """The last lines of a text file (empty if it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


_LIVE: set[Proc] = set()
_LIVE_LOCK = threading.Lock()


def _stop_all_at_exit() -> None:
    with _LIVE_LOCK:
        procs = list(_LIVE)
    for p in reversed(procs):
        with contextlib.suppress(Exception):
            p.stop(grace=3)


atexit.register(_stop_all_at_exit)


class Proc:
    """A child process in its own process group, its output written to a log file.

    Every started Proc is stopped when the interpreter exits (atexit), so a crashed test
    session does not leave servers behind.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | str | None = None,
        user: str | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_path)
        self.env = env
        self.cwd = cwd
        self.user = user
        self.popen: subprocess.Popen | None = None

    def start(self) -> Proc:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab", buffering=0)  # noqa: SIM115 - handed to the child, closed below
        log.write(f"--- start {time.strftime('%H:%M:%S')}: {' '.join(self.argv)}\n".encode())
        kwargs = {}
        if self.user is not None:
            kwargs["user"] = self.user
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
            **kwargs,
        )
        log.close()
        with _LIVE_LOCK:
            _LIVE.add(self)
        return self

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def signal_group(self, sig: int) -> None:
        if self.popen is None:
            return
        try:
            os.killpg(self.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def kill(self) -> None:
        """SIGKILL the whole process group at once (a crash, not a shutdown)."""
        self.signal_group(signal.SIGKILL)
        if self.popen is not None:
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def stop(self, grace: float = 10.0) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                try:
                    self.popen.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
        # Children that outlived their leader.
        self.signal_group(signal.SIGKILL)
        with _LIVE_LOCK:
            _LIVE.discard(self)

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    def __repr__(self) -> str:
        return f"Proc({self.name!r}, pid={self.pid})"


def wait_until(
    check: Callable[[], bool | str | None],
    timeout: float,
    what: str,
    interval: float = 0.1,
    procs: Iterable[Proc] = (),
) -> None:
    """Poll `check` until it returns a truthy value; raise PlatformError on timeout.

    If one of `procs` exits meanwhile, fail at once with its log tail. `check` may raise;
    the last exception is reported on timeout.
    """
    deadline = time.monotonic() + timeout
    last: str = ""
    procs = list(procs)
    while True:
        for p in procs:
            if p.popen is not None and p.popen.poll() is not None:
                raise PlatformError(
                    f"{p.name} exited with code {p.popen.returncode} while waiting for {what}.\n"
                    f"--- last lines of {p.log_path} ---\n{p.log_tail()}"
                )
        try:
            if check():
                return
        except Exception as e:  # noqa: BLE001 - reported on timeout
            last = f"{type(e).__name__}: {e}"
        if time.monotonic() > deadline:
            msg = f"timed out after {timeout:.0f}s waiting for {what}"
            if last:
                msg += f" (last error: {last})"
            for p in procs:
                msg += f"\n--- last lines of {p.log_path} ---\n{p.log_tail()}"
            raise PlatformError(msg)
        time.sleep(interval)
