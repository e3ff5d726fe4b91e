"""A throwaway PostgreSQL server for benchmarks and tests.

``with PgServer() as server: url = server.create_database("bench")`` starts a cluster in a
temporary folder (initdb + pg_ctl on a free port, as the ``postgres`` user when running as
root), and removes it on exit. :class:`ExistingServer` offers the same interface on top of
a ``DATABASE_URL`` that is already running.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

BINARIES = ("initdb", "pg_ctl", "postgres")


def find_binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if not candidates:
        raise RuntimeError(
            f"PostgreSQL's {name} is not installed (not on PATH or under /usr/lib/postgresql/*/bin)"
        )
    return candidates[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Databases:
    """Create and drop databases through a maintenance connection URL."""

    admin_url: str

    def database_url(self, name: str) -> str:
        parts = urlsplit(self.admin_url)
        return urlunsplit(parts._replace(path=f"/{name}"))

    def create_database(self, prefix: str = "bench") -> str:
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = urlsplit(url).path.lstrip("/")
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class ExistingServer(_Databases):
    def __init__(self, url: str):
        self.admin_url = url

    def __enter__(self) -> ExistingServer:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class PgServer(_Databases):
    def __init__(self, port: int | None = None, settings: dict[str, str] | None = None):
        self.port = port or free_port()
        self.settings = settings or {}
        self.root: Path | None = None
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = list(args)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        if completed.returncode:
            raise RuntimeError(f"{args[0]} failed: {completed.stderr or completed.stdout}")

    def start(self) -> PgServer:
        self.root = Path(tempfile.mkdtemp(prefix="closedloop-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        data = self.root / "data"
        self._run(
            find_binary("initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.root}",
        ]
        options += [f"-c {key}={value}" for key, value in self.settings.items()]
        self._run(
            find_binary("pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(self.root / "log"),
            "-o",
            " ".join(options),
            "-w",
            "start",
        )
        return self

    def stop(self) -> None:
        if self.root is None:
            return
        try:
            self._run(
                find_binary("pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w", "stop"
            )
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def server_for(database_url: str | None = None) -> PgServer | ExistingServer:
    """The server at ``DATABASE_URL`` when it is a PostgreSQL one, else a throwaway one."""
    url = database_url if database_url is not None else os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        return ExistingServer(url)
    return PgServer()
