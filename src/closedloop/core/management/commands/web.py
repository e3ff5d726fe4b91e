"""``closedloop web``: the production web server (gunicorn) for ``closedloop.wsgi``."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand

MAX_DEFAULT_WORKERS = 8


def default_workers() -> int:
    return min(2 * (os.cpu_count() or 1) + 1, MAX_DEFAULT_WORKERS)


def gunicorn_options(*, bind: str, workers: int, timeout: int) -> dict[str, Any]:
    return {
        "bind": bind,
        "workers": workers,
        "worker_class": "sync",
        "timeout": timeout,
        "graceful_timeout": 30,
        "keepalive": 5,
        "max_requests": 2000,
        "max_requests_jitter": 200,
        "accesslog": "-",
        "errorlog": "-",
        "forwarded_allow_ips": os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
        "proc_name": "closedloop-web",
    }


def run_gunicorn(options: dict[str, Any]) -> None:
    from gunicorn.app.base import BaseApplication

    class ClosedloopApplication(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            from closedloop.wsgi import application

            return application

    ClosedloopApplication().run()


class Command(BaseCommand):
    help = "Serve closedloop with gunicorn (production web server)."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on.")
        parser.add_argument(
            "--bind", default="", help="Full bind address; overrides --host/--port."
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=0,
            help=f"Processes (default 2*cores+1, at most {MAX_DEFAULT_WORKERS}).",
        )
        parser.add_argument(
            "--timeout", type=int, default=60, help="Seconds before a stuck request is killed."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        workers = options["workers"] or default_workers()
        if workers < 1:
            self.stderr.write("--workers must be 1 or more.")
            raise SystemExit(2)
        bind = options["bind"] or f"{options['host']}:{options['port']}"
        run_gunicorn(gunicorn_options(bind=bind, workers=workers, timeout=options["timeout"]))
