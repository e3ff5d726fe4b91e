"""/health/: version, database, broker and a recent worker heartbeat."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from closedloop import __version__
from closedloop.jobs.models import WorkerHeartbeat


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def local_broker(settings, tmp_path):
    """An embedded SQLite broker in a temp folder: always reachable."""
    settings.CELERY_BROKER_URL = f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}"


def test_it_reports_database_and_broker_ok(client, db, local_broker):
    r = client.get("/health/")
    assert r.status_code == 200
    data = r.json()
    assert data["version"] == __version__
    assert data["database"] is True and data["broker"] is True
    assert r["Cache-Control"].startswith("max-age=0")


def test_it_needs_no_login(client, db, local_broker):
    assert client.get("/health/").status_code == 200


def test_a_broker_that_is_down_gives_503(client, db, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port()}/0"
    r = client.get("/health/")
    assert r.status_code == 503
    data = r.json()
    assert data["broker"] is False and data["database"] is True
    assert data["status"] == "error"


def test_without_any_heartbeat_the_worker_is_not_seen(client, db, local_broker):
    data = client.get("/health/").json()
    assert data["worker"] is False and data["worker_last_seen"] is None
    assert data["status"] == "degraded"


def test_a_fresh_heartbeat_means_the_worker_is_seen(client, db, local_broker):
    WorkerHeartbeat.objects.create(hostname="celery@box", seen_at=timezone.now())
    r = client.get("/health/")
    assert r.status_code == 200
    assert r.json()["worker"] is True and r.json()["status"] == "ok"


def test_a_stale_heartbeat_means_the_worker_is_not_seen(client, db, local_broker, settings):
    settings.WORKER_HEARTBEAT_SECONDS = 30
    seen = timezone.now() - timedelta(minutes=10)
    WorkerHeartbeat.objects.create(hostname="celery@box", seen_at=seen)
    r = client.get("/health/")
    assert r.status_code == 200  # a missing worker degrades, it does not fail the probe
    data = r.json()
    assert data["worker"] is False and data["worker_last_seen"] == seen.isoformat()
    assert data["status"] == "degraded"
