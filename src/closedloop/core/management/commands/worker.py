"""``closedloop worker``: a production Celery worker (``--beat`` adds the scheduler)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

DEFAULT_QUEUES = "celery"


def worker_argv(
    *,
    concurrency: int | None,
    pool: str,
    beat: bool,
    queues: str,
    loglevel: str,
    hostname: str = "",
) -> list[str]:
    argv = ["worker", f"--pool={pool}", f"--loglevel={loglevel}", f"--queues={queues}"]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    if hostname:
        argv.append(f"--hostname={hostname}")
    if beat:
        argv += ["-B", "--scheduler=django_celery_beat.schedulers:DatabaseScheduler"]
    return argv


class Command(BaseCommand):
    help = "Start a Celery worker that runs closedloop's jobs."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--concurrency", type=int, default=None, help="Processes (default: cores)."
        )
        parser.add_argument(
            "--pool",
            choices=("prefork", "solo", "threads"),
            default="prefork",
            help="prefork (default), solo (one job at a time, in this process) or threads.",
        )
        parser.add_argument(
            "--beat", action="store_true", help="Also run the scheduler (once per site)."
        )
        parser.add_argument(
            "--queues", default=DEFAULT_QUEUES, help="Comma-separated queues to consume."
        )
        parser.add_argument("--hostname", default="", help="Worker node name, e.g. worker1@%%h.")
        parser.add_argument("--loglevel", default="INFO", help="Celery log level.")

    def handle(self, *args: Any, **options: Any) -> None:
        from closedloop.celery_app import app

        if options["concurrency"] is not None and options["concurrency"] < 1:
            self.stderr.write("--concurrency must be 1 or more.")
            raise SystemExit(2)
        app.worker_main(
            worker_argv(
                concurrency=options["concurrency"],
                pool=options["pool"],
                beat=options["beat"],
                queues=options["queues"],
                loglevel=options["loglevel"],
                hostname=options["hostname"],
            )
        )
