"""``closedloop serve``: the web server, a Celery worker and Celery beat, supervised.

What the demo runs. ``init`` first, then three child processes whose output is
forwarded with a ``[web]`` / ``[worker]`` / ``[beat]`` prefix. Ctrl-C or SIGTERM stops
them all (terminate, wait, then kill) and exits 0; if one child dies on its own, the
others are stopped and the command exits non-zero saying which one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

STOP_TIMEOUT = 15.0
POLL_SECONDS = 0.3


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    readers: list[threading.Thread] = field(default_factory=list)


def closedloop_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "closedloop", *args]


def child_commands(
    host: str, port: int, debug: bool, fake_rapidpro: int | None = None
) -> list[Child]:
    if debug:
        web = closedloop_argv("runserver", "--noreload", f"{host}:{port}")
    else:
        web = closedloop_argv("web", "--host", host, "--port", str(port), "--workers", "2")
    worker = closedloop_argv("worker", "--pool=threads", "--concurrency=2")
    beat = [
        sys.executable, "-m", "celery", "-A", "closedloop.celery_app", "beat",
        "--scheduler=django_celery_beat.schedulers:DatabaseScheduler",
        "--loglevel=INFO", "--pidfile=",
    ]  # fmt: skip
    children = [Child("web", web), Child("worker", worker), Child("beat", beat)]
    if fake_rapidpro:
        argv = closedloop_argv("fake-rapidpro", "--demo", "--port", str(fake_rapidpro))
        children.append(Child("rapidpro", argv))
    return children


def forward(stream: IO[bytes], prefix: str, out: IO[str]) -> None:
    for raw in iter(stream.readline, b""):
        out.write(f"[{prefix}] {raw.decode('utf-8', 'replace').rstrip()}\n")
        out.flush()
    stream.close()


def start(child: Child, env: dict[str, str], out: IO[str]) -> None:
    # A new session: Ctrl-C reaches only this supervisor, which stops children in order.
    child.process = subprocess.Popen(
        child.argv,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert child.process.stdout is not None
    reader = threading.Thread(
        target=forward, args=(child.process.stdout, child.name, out), daemon=True
    )
    reader.start()
    child.readers.append(reader)


def stop_all(children: list[Child], timeout: float = STOP_TIMEOUT) -> None:
    running = [c.process for c in children if c.process and c.process.poll() is None]
    for process in running:
        process.terminate()
    deadline = time.monotonic() + timeout
    for process in running:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for child in children:
        for reader in child.readers:
            reader.join(timeout=2)


def first_dead(children: list[Child]) -> Child | None:
    for child in children:
        if child.process is not None and child.process.poll() is not None:
            return child
    return None


class Command(BaseCommand):
    help = "Run the web server, a Celery worker and Celery beat together (what the demo runs)."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--skip-init", action="store_true", help="Do not run `init` first.")
        parser.add_argument(
            "--fake-rapidpro",
            type=int,
            metavar="PORT",
            default=None,
            help="Also serve the demo's fake RapidPro on this port (what `demo` does).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["skip_init"]:
            call_command("init", verbosity=1)
        children = child_commands(
            options["host"], options["port"], settings.DEBUG, options["fake_rapidpro"]
        )
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.setdefault("DJANGO_SETTINGS_MODULE", "closedloop.settings")
        stopping = threading.Event()

        def request_stop(signum: int, _frame: Any) -> None:
            stopping.set()

        previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            dead = self.supervise(children, env, options, stopping)
        finally:
            stop_all(children)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if dead is not None:
            code = dead.process.returncode if dead.process else "?"
            raise CommandError(
                f"The {dead.name} process stopped unexpectedly (exit code {code}); "
                "the other processes were stopped. Its output is above."
            )
        self.stdout.write("closedloop stopped.")

    def supervise(
        self, children: list[Child], env: dict[str, str], options: dict[str, Any],
        stopping: threading.Event,
    ) -> Child | None:  # fmt: skip
        for child in children:
            start(child, env, sys.stdout)
        url = f"http://{options['host']}:{options['port']}/"
        self.stdout.write(self.style.SUCCESS(f"closedloop is running at {url}"))
        self.stdout.write("Press Ctrl-C to stop the web server, the worker and the scheduler.")
        self.stdout.flush()
        while not stopping.wait(POLL_SECONDS):
            dead = first_dead(children)
            if dead is not None:
                self.stderr.write(f"The {dead.name} process stopped; stopping the others.")
                return dead
        self.stdout.write("Stopping…")
        return None
