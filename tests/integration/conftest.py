"""Helpers for tests that run real processes: free ports, a real Redis, a temp install."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REDIS_SERVER = "redis-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def stop(process: subprocess.Popen[Any], timeout: float = 10) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A real, throw-away redis-server. Missing: skip locally, fail in CI."""
    binary = shutil.which(REDIS_SERVER) or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if binary is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("redis-server is not installed; CI must run the integration tests.")
        pytest.skip("redis-server is not installed (apt-get install redis-server).")
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: port_open(port), 15, "redis-server to listen")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(process)


@dataclass
class Install:
    """A closedloop install in a temp folder: its own SQLite database and var/ folder."""

    root: Path
    env: dict[str, str]

    @property
    def database(self) -> Path:
        return self.root / "closedloop.sqlite3"

    def closedloop(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "closedloop", *args],
            env=self.env, capture_output=True, text=True, timeout=120, check=False, **kwargs,
        )  # fmt: skip

    def django(self, code: str) -> str:
        """Run ``code`` after django.setup() in a fresh process; returns its stdout."""
        done = subprocess.run(
            [sys.executable, "-c", f"import django\ndjango.setup()\n{code}"],
            env=self.env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.database, timeout=30) as conn:
            return conn.execute(sql, params).fetchall()

    def spawn(self, *args: str, log: Path) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "closedloop", *args],
            env=self.env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip


@pytest.fixture
def make_install(tmp_path: Path) -> Callable[..., Install]:
    def make(**extra: str) -> Install:
        root = tmp_path / "install"
        root.mkdir(exist_ok=True)
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("CELERY_", "DATABASE_", "REDIS_", "DJANGO_"))
        }
        env.update(
            DJANGO_SETTINGS_MODULE="closedloop.settings",
            CLOSEDLOOP_ENV_FILE=str(root / "none.env"),
            DEBUG="True",
            VAR_DIR=str(root),
            DATABASE_URL=f"sqlite:///{root / 'closedloop.sqlite3'}",
            CELERY_TASK_ALWAYS_EAGER="False",
            PYTHONUNBUFFERED="1",
            **extra,
        )
        install = Install(root=root, env=env)
        done = install.closedloop("init")
        assert done.returncode == 0, done.stderr[-3000:]
        return install

    return make
