"""``closedloop serve`` runs web + worker + beat on the embedded SQLite broker, and stops
them all cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from .conftest import Install, free_port, port_open, stop, wait_for
from .test_worker import enqueue, wait_status

pytestmark = pytest.mark.integration


def health(port: int) -> dict[str, object]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/", timeout=5) as r:
            return json.loads(r.read())
    except OSError:
        return {}


def children_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


def serve(install: Install, port: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "closedloop", "serve", "--port", str(port)],
        env=install.env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def test_serve_runs_a_job_on_the_embedded_broker_and_stops_on_ctrl_c(make_install, tmp_path):
    install = make_install()  # no REDIS_URL: the embedded SQLite broker
    port = free_port()
    log = tmp_path / "serve.log"
    process = serve(install, port, log)
    try:
        wait_for(lambda: health(port).get("worker") is True, 60, "/health/ to see the worker")
        job_id = enqueue(install, total=5, delay=0.02)
        wait_status(install, job_id, "succeeded")
        data = health(port)
        assert data["database"] is True and data["broker"] is True
        children = children_of(process.pid)
        assert len(children) == 3
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0, log.read_text()[-3000:]
        assert not any(alive(pid) for pid in children)
        assert not port_open(port)
        text = log.read_text()
        assert f"running at http://127.0.0.1:{port}/" in text and "closedloop stopped." in text
        assert "[worker]" in text and "[beat]" in text
    except BaseException:
        print(log.read_text()[-5000:])
        raise
    finally:
        stop(process)


def test_serve_stops_everything_and_fails_when_a_child_dies(make_install, tmp_path):
    install = make_install()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        log = tmp_path / "serve.log"
        process = serve(install, port, log)
        try:
            code = process.wait(timeout=60)
        finally:
            stop(process)
    text = log.read_text()
    assert code != 0, text[-3000:]
    assert "The web process stopped unexpectedly" in text
