"""``python -m benchmarks SUITE [--size ci|full] [--db sqlite|postgres] [--json FILE]``

Each benchmark runs in its own process on a fresh database (a SQLite file in a temporary
folder, or a new PostgreSQL database; without ``DATABASE_URL`` a throwaway PostgreSQL
server is started and stopped). Prints, and optionally writes, a JSON list with one object
per measurement: name, size, db, seconds (or rate + unit), target, meets_target.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.harness import SIZES
from benchmarks.pgserver import server_for

SUITES = ("registry", "feedback", "polls")
MARKER = "BENCHMARK-RESULT "


@contextlib.contextmanager
def databases(db: str) -> Iterator[Any]:
    """Yields a function giving a fresh DATABASE_URL for each benchmark."""
    if db == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="closedloop-bench-"))
        counter = iter(range(1_000_000))
        try:
            yield lambda: f"sqlite:///{folder / f'bench-{next(counter)}.sqlite3'}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    with server_for(os.environ.get("DATABASE_URL")) as server:
        created: list[str] = []

        def fresh() -> str:
            created.append(server.create_database())
            return created[-1]

        try:
            yield fresh
        finally:
            for url in created:
                with contextlib.suppress(Exception):
                    server.drop_database(url)


def run_one(suite: str, name: str, size: str, db: str, url: str) -> list[dict[str, Any]]:
    var_dir = tempfile.mkdtemp(prefix="closedloop-bench-var-")
    Path(var_dir, "static").mkdir()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "VAR_DIR": var_dir,
        "DEBUG": "False",
        "SECRET_KEY": "benchmark-only-secret-key-0123456789abcdefghijklmnop",
        "ALLOWED_HOSTS": "testserver,localhost",
        "CELERY_TASK_ALWAYS_EAGER": "True",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "closedloop.settings",
    }
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "benchmarks.child", suite, name, "--size", size, "--db", db],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)
    for line in reversed(completed.stdout.splitlines()):
        if line.startswith(MARKER):
            if completed.stderr.strip():
                print(completed.stderr, file=sys.stderr)
            return list(json.loads(line[len(MARKER) :]))
    return [
        {
            "name": f"{suite}.{name}",
            "size": size,
            "db": db,
            "target": "",
            "meets_target": False,
            "error": (completed.stderr or completed.stdout)[-2000:],
        }
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("suite", choices=SUITES)
    parser.add_argument("--size", choices=SIZES, default="ci")
    parser.add_argument(
        "--db",
        choices=("sqlite", "postgres"),
        action="append",
        help="repeat for both; default sqlite",
    )
    parser.add_argument("--only", action="append", help="run only these benchmarks")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    suite = importlib.import_module(f"benchmarks.{args.suite}")
    names = args.only or list(suite.BENCHMARKS)
    results: list[dict[str, Any]] = []
    for db in args.db or ["sqlite"]:
        with databases(db) as fresh_url:
            for name in names:
                measured = run_one(args.suite, name, args.size, db, fresh_url())
                for item in measured:
                    print(json.dumps(item), flush=True)
                results += measured
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
