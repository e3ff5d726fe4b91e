"""The ``closedloop`` command. Each sub-command is a Django management command,
so ``python manage.py create-account …`` and ``closedloop create-account …`` are the same.
Hyphens and underscores in command names are interchangeable.
"""

from __future__ import annotations

import os
import sys

COMMANDS: list[tuple[str, str]] = [
    ("init", "Create or upgrade the database, cache table and static files (idempotent)."),
    ("serve [--port N]", "Web server plus a Celery worker and beat, as the demo runs them."),
    ("web [--port N] [--workers N]", "Production web server (gunicorn)."),
    ("worker [--concurrency N]", "Production Celery worker (add --beat for the scheduler)."),
    (
        "demo [--port N]",
        "Set up, load the demo data if missing, and serve (what `make demo` runs).",
    ),
    ("demo-data [--size small|medium]", "Build the deterministic demo country and accounts."),
    ('create-account "NAME" --admin EMAIL --password PW', "Create an account; prints its slug."),
    (
        "create-user EMAIL --account SLUG --role ROLE [--password PW] [--scope ORGUNIT_ID …]",
        "Create a user (or add a membership).",
    ),
    (
        "import-users FILE.csv --account SLUG [--email-column email] [--role instructor]",
        "Create many users from a CSV file.",
    ),
    ("create-token EMAIL [--name NAME]", "Print a new personal API token for a user."),
    (
        "import-orgunits FILE --account SLUG --parents COLS --name COL [options]",
        "Import an org-unit hierarchy from CSV/XLSX as a Job (see docs/cli.md).",
    ),
    ("export-orgunits --account SLUG [--root ID] [--format csv|xlsx] -o FILE", "Export a subtree."),
    ("import-people FILE.csv --account SLUG [options]", "Import people from CSV as a Job."),
    (
        "sync-polls --account SLUG [--connection NAME]",
        "Sync RapidPro connections now (flows, groups, contacts, runs, messages).",
    ),
    (
        "fetch-runs --account SLUG --connection NAME [--days N]",
        "Back-fill older RapidPro runs as a Job; emails you when done.",
    ),
    (
        "fake-rapidpro [--port N] [--contacts N] [--polls N] [--seed N] [--demo]",
        "Serve a fake RapidPro with generated data (prints its URL and token).",
    ),
    ("config", "List every configuration variable with its current value."),
    ("check [--deploy]", "Django's system checks."),
]


def help_text() -> str:
    from closedloop import __version__

    width = 0
    lines = [
        f"closedloop {__version__} — registry, people, data collection and feedback",
        "",
        "usage: closedloop COMMAND [options]     (closedloop COMMAND --help for its options)",
        "",
        "commands:",
    ]
    for usage, text in COMMANDS:
        lines.append(f"  {usage}")
        lines.append(f"      {text}")
    lines += [
        "",
        "Every Django management command (migrate, shell, createsuperuser, …) works too.",
        "Configuration comes from the environment or closedloop.env: see docs/configuration.md.",
    ]
    del width
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "closedloop.settings")
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(help_text())
        return 0
    if argv[0] in {"--version", "version"}:
        from closedloop import __version__

        print(__version__)
        return 0
    argv[0] = argv[0].replace("-", "_")
    from django.core.exceptions import ImproperlyConfigured

    try:
        from django.core.management import execute_from_command_line

        execute_from_command_line(["closedloop", *argv])
    except ImproperlyConfigured as exc:
        print(f"closedloop: configuration error: {exc}", file=sys.stderr)
        return 2
    return 0
