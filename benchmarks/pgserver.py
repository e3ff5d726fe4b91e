"""Databases on a PostgreSQL server for the benchmarks.

``with server_for(url) as server: url = server.create_database("bench")`` gives a fresh
database on the server at ``DATABASE_URL`` (:class:`ExistingServer`) or, failing that, on a
throwaway cluster (:class:`PgServer`) started and removed by ``scripts/pgserver.py``, which
is the one implementation of finding binaries, picking a port and running initdb/pg_ctl.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

_SCRIPTS = str(Path(__file__).resolve().parent.parent / "scripts")
if _SCRIPTS not in sys.path:
    sys.path.insert(0, _SCRIPTS)

import pgserver as _pgserver  # noqa: E402  (scripts/pgserver.py)

find_binary = _pgserver.find_binary
free_port = _pgserver.free_port


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
    """A throwaway cluster in a temporary folder, via ``scripts/pgserver.py``."""

    def __init__(self) -> None:
        self.root: Path | None = None
        self.admin_url = ""

    def start(self) -> PgServer:
        self.root = Path(tempfile.mkdtemp(prefix="closedloop-pg-"))
        url = _pgserver.start(self.root)
        self.admin_url = urlunsplit(urlsplit(url)._replace(path="/postgres"))
        return self

    def stop(self) -> None:
        if self.root is None:
            return
        try:
            _pgserver.stop(self.root)
        finally:
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
