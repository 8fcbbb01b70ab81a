"""A real, throw-away PostgreSQL server for tests and benchmarks (the relay's shared outbox).

Debian's ``postgresql`` package provides the binaries (``/usr/lib/postgresql/<v>/bin``);
nothing is installed here. ``initdb`` and ``postgres`` refuse to run as root, so as root the
server runs as an unprivileged user (``nobody`` unless ``PAGERBRIDGE_PG_USER`` says
otherwise) in a private temporary directory it owns: data directory and Unix socket
inside, TCP on a free loopback port, ``trust`` authentication (loopback only, throw-away
data). Stopped by its PID; :meth:`restart` keeps the data (a database outage in the middle
of traffic).

:func:`find_bin_dir` returns None when PostgreSQL is not installed; callers decide whether
that skips (a developer's machine) or fails (``CI=true``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from pagerbridge_devkit.ports import free_port

#: The Debian package that provides the server binaries (``apt-get install postgresql``).
APT_PACKAGE = "postgresql"
MIN_VERSION = 13


def find_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin directory, or None."""
    explicit = os.environ.get("PAGERBRIDGE_PG_BIN")
    if explicit:
        return Path(explicit) if (Path(explicit) / "postgres").exists() else None
    candidates = []
    for path in Path("/usr/lib/postgresql").glob("*/bin/postgres"):
        with contextlib.suppress(ValueError):
            candidates.append((int(path.parent.parent.name), path.parent))
    candidates = [c for c in candidates if c[0] >= MIN_VERSION]
    if candidates:
        return max(candidates)[1]
    found = shutil.which("postgres")
    return Path(found).parent if found else None


class PostgresServer:
    def __init__(self, bin_dir: Path, root: Path | None = None) -> None:
        self.bin_dir = bin_dir
        self.root = root or Path(tempfile.mkdtemp(prefix="pagerbridge-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "run"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._user = os.environ.get("PAGERBRIDGE_PG_USER", "nobody") if os.geteuid() == 0 else None

    @property
    def dsn(self) -> str:
        """A libpq URI (what ``PAGERBRIDGE_OUTBOX_DSN`` takes)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", self._user, "--", *args] if self._user else list(args)

    def init(self) -> PostgresServer:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            for path in (self.root, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chmod(self.root, 0o700)
        subprocess.run(
            self._cmd(
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            ),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        return self

    def start(self, timeout: float = 60.0) -> PostgresServer:
        if not self.data.exists():
            self.init()
        log = (self.root / "postgres.log").open("ab")
        self.proc = subprocess.Popen(
            self._cmd(
                str(self.bin_dir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                str(self.socket_dir),
                "-c",
                "max_connections=200",
                "-c",
                "fsync=on",
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {self.logs()[-2000:]}")
            ready = subprocess.run(
                [str(self.bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError(f"postgres not ready after {timeout}s: {self.logs()[-2000:]}")

    def stop(self, mode: str = "fast") -> None:
        """Stop by PID: ``fast`` (SIGINT: roll back sessions, clean shutdown) or
        ``immediate`` (SIGQUIT: like a crash; recovery at the next start)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        # runuser is the parent; the postmaster is its child in the same new session.
        sig = signal.SIGQUIT if mode == "immediate" else signal.SIGINT
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def logs(self) -> str:
        path = self.root / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, name: str) -> str:
        """A fresh database on this server; its DSN."""
        subprocess.run(
            [
                str(self.bin_dir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                name,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"


@contextlib.contextmanager
def running(bin_dir: Path | None = None) -> Iterator[PostgresServer]:
    """A started server, removed afterwards. Raises FileNotFoundError when none installed."""
    found = bin_dir or find_bin_dir()
    if found is None:
        raise FileNotFoundError(
            f"PostgreSQL not installed (apt-get install {APT_PACKAGE}, or set PAGERBRIDGE_PG_BIN)"
        )
    server = PostgresServer(found)
    try:
        yield server.start()
    finally:
        server.remove()
