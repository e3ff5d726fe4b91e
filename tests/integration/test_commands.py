"""The process commands: init, config, worker and web."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import urllib.request

import pytest
from django.core.management import call_command

from closedloop.config import REGISTRY
from closedloop.core.management.commands import web as web_command
from closedloop.core.management.commands.config import mask_url_password

from .conftest import free_port, stop, wait_for


@pytest.mark.integration
def test_init_is_safe_to_run_twice(make_install):
    install = make_install()  # runs init once
    again = install.closedloop("init")
    assert again.returncode == 0, again.stderr
    assert "closedloop is ready" in again.stdout
    for folder in ("media", "mail"):
        assert (install.root / folder).is_dir()
    tables = {row[0] for row in install.query("SELECT name FROM sqlite_master")}
    assert {"jobs_job", "closedloop_cache", "django_celery_beat_periodictask"} <= tables
    assert not (install.root / "static").exists()  # DEBUG: no collectstatic


@pytest.mark.integration
def test_init_collects_static_files_when_not_debugging(make_install):
    install = make_install()
    install.env.update(DEBUG="False", SECRET_KEY="integration-test-secret-key-0123456789")
    done = install.closedloop("init")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (install.root / "static" / "staticfiles.json").is_file()


def run_config(*args: str) -> str:
    out = io.StringIO()
    call_command("config", *args, stdout=out)
    return out.getvalue()


def test_config_lists_every_variable_and_masks_secrets(settings):
    settings.SECRET_KEY = "very-secret-value"
    settings.EMAIL_HOST_PASSWORD = "hunter2"
    text = run_config()
    for name in REGISTRY:
        assert f"{name} = " in text
    assert "very-secret-value" not in text and "hunter2" not in text
    assert "SECRET_KEY = ********" in text
    assert "restart needed: yes" in text


def test_config_masks_passwords_inside_urls():
    assert mask_url_password("postgres://app:pw@db:5432/x") == "postgres://app:********@db:5432/x"
    assert mask_url_password("redis://localhost:6379/0") == "redis://localhost:6379/0"
    assert mask_url_password("sqlite:////var/db.sqlite3") == "sqlite:////var/db.sqlite3"


def test_config_markdown_is_a_table_row_per_variable():
    text = run_config("--markdown")
    lines = text.strip().splitlines()
    assert lines[0].startswith("| Variable | Default | Restart needed |")
    assert len(lines) == len(REGISTRY) + 2
    assert any(line.startswith("| `DATABASE_URL` |") for line in lines)


@pytest.fixture
def worker_main(monkeypatch):
    from closedloop.celery_app import app

    calls: list[list[str]] = []
    monkeypatch.setattr(app, "worker_main", calls.append)
    return calls


def test_worker_starts_celery_with_prefork_by_default(worker_main):
    call_command("worker")
    argv = worker_main[0]
    assert argv[0] == "worker" and "--pool=prefork" in argv and "-B" not in argv


def test_worker_options_reach_celery(worker_main):
    call_command("worker", "--pool=solo", "--concurrency=3", "--beat", "--queues=imports,default")
    argv = worker_main[0]
    assert {"--pool=solo", "--concurrency=3", "-B", "--queues=imports,default"} <= set(argv)
    assert "--scheduler=django_celery_beat.schedulers:DatabaseScheduler" in argv


def test_worker_refuses_zero_concurrency(worker_main):
    with pytest.raises(SystemExit):
        call_command("worker", "--concurrency=0")
    assert worker_main == []


def test_web_defaults_are_production_ready(monkeypatch):
    seen: list[dict] = []
    monkeypatch.setattr(web_command, "run_gunicorn", seen.append)
    monkeypatch.setattr(web_command.os, "cpu_count", lambda: 64)
    call_command("web", "--port", "9001")
    options = seen[0]
    assert options["bind"] == "127.0.0.1:9001"
    assert options["workers"] == web_command.MAX_DEFAULT_WORKERS
    assert options["accesslog"] == "-" and options["graceful_timeout"] > 0
    call_command("web", "--bind", "0.0.0.0:80", "--workers", "3")
    assert seen[1]["bind"] == "0.0.0.0:80" and seen[1]["workers"] == 3


@pytest.mark.integration
def test_web_serves_the_site_with_gunicorn(make_install, tmp_path):
    install = make_install()
    port = free_port()
    log = tmp_path / "web.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "closedloop", "web", "--port", str(port), "--workers", "1"],
        env=install.env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip

    def get_health() -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/", timeout=5) as r:
                return r.status
        except OSError:
            return 0

    try:
        assert wait_for(get_health, 30, "gunicorn to answer") == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert "GET /health/" in log.read_text()  # access log on stdout
    finally:
        stop(process)
