"""A throwaway PostgreSQL server for the test suite.

    python scripts/pgserver.py start [--dir DIR]   # prints DATABASE_URL=postgres://…
    python scripts/pgserver.py stop  [--dir DIR]
    python scripts/pgserver.py run -- COMMAND …     # COMMAND runs with DATABASE_URL set

or, from Python, ``with pg_server() as url: …``. The server listens on 127.0.0.1 on a
free port, with ``fsync=off`` for speed. initdb and pg_ctl are found on PATH or under
/usr/lib/postgresql/*/bin; as root they run as the ``postgres`` user (runuser), with
the data directory in a temporary folder that user owns.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEFAULT_DIR = Path(tempfile.gettempdir()) / "closedloop-pgserver"
STATE_FILE = "closedloop-url"


class PgServerError(RuntimeError):
    pass


def find_binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if candidates:
        return candidates[0]
    raise PgServerError(
        f"{name} not found on PATH or under /usr/lib/postgresql/*/bin; "
        "install PostgreSQL (apt-get install postgresql) or set DATABASE_URL."
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_owner(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def _owner_ids() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    import pwd

    entry = pwd.getpwnam("postgres")
    return entry.pw_uid, entry.pw_gid


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(_as_owner(cmd), capture_output=True, text=True, check=False)
    if proc.returncode:
        raise PgServerError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")


def start(base: Path = DEFAULT_DIR) -> str:
    """Start a server in ``base`` (replacing a previous one there); returns its URL."""
    if (base / STATE_FILE).exists():
        stop(base)
    base.mkdir(parents=True, exist_ok=True)
    data, socket_dir = base / "data", base / "socket"
    shutil.rmtree(data, ignore_errors=True)
    socket_dir.mkdir(exist_ok=True)
    ids = _owner_ids()
    if ids:
        for path in (base, socket_dir):
            os.chown(path, *ids)
    _run(
        [
            find_binary("initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]
    )
    port = free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c fsync=off -c synchronous_commit=off"
        f" -c full_page_writes=off -c unix_socket_directories={socket_dir} -c max_connections=100"
    )
    _run(
        [
            find_binary("pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(base / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        ]
    )
    url = f"postgres://postgres@127.0.0.1:{port}/closedloop"
    _wait_until_ready(port)
    _run(
        [
            find_binary("createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            "postgres",
            "closedloop",
        ]
    )
    (base / STATE_FILE).write_text(url)
    return url


def _wait_until_ready(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise PgServerError(f"PostgreSQL did not accept connections on port {port}")


def stop(base: Path = DEFAULT_DIR) -> None:
    data = base / "data"
    if (data / "postmaster.pid").exists():
        _run([find_binary("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
    shutil.rmtree(base, ignore_errors=True)


@contextmanager
def pg_server(base: Path | None = None) -> Iterator[str]:
    """``with pg_server() as url:`` — a fresh server for the block, removed afterwards."""
    base = base or Path(tempfile.mkdtemp(prefix="closedloop-pg-"))
    url = start(base)
    try:
        yield url
    finally:
        stop(base)


def run(command: list[str]) -> int:
    """Run ``command`` against a fresh server; its exit code, the server stopped either way."""
    if not command:
        raise PgServerError("run needs a command after --")
    with pg_server() as url:
        print(f"DATABASE_URL={url}", flush=True)
        return subprocess.call(command, env={**os.environ, "DATABASE_URL": url})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "stop", "run"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"default {DEFAULT_DIR}")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="for run: the command")
    args = parser.parse_args(argv)
    try:
        if args.action == "run":
            command = args.command[1:] if args.command[:1] == ["--"] else args.command
            return run(command)
        if args.action == "start":
            print(f"DATABASE_URL={start(args.dir)}")
        else:
            stop(args.dir)
    except PgServerError as exc:
        print(f"pgserver: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
