from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache

from closedloop import __version__


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:
        return False


def _broker_ok() -> bool:
    """Can we reach the broker now? Reads ``CELERY_BROKER_URL`` at call time."""
    from closedloop.celery_app import app

    try:
        with app.connection_for_write(url=settings.CELERY_BROKER_URL) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
        return True
    except Exception:
        return False


def _worker_seen() -> tuple[bool, str | None]:
    from closedloop.jobs.models import WorkerHeartbeat

    try:
        last = (
            WorkerHeartbeat.objects.order_by("-seen_at").values_list("seen_at", flat=True).first()
        )
    except Exception:
        return False, None
    if last is None:
        return False, None
    recent = last >= timezone.now() - timedelta(seconds=settings.WORKER_HEARTBEAT_SECONDS * 4)
    return recent, last.isoformat()


@never_cache
def health(request: HttpRequest) -> JsonResponse:
    database = _database_ok()
    broker = _broker_ok()
    worker, worker_last_seen = _worker_seen()
    ok = database and broker
    return JsonResponse(
        {
            "status": "ok" if ok and worker else ("degraded" if ok else "error"),
            "version": __version__,
            "database": database,
            "broker": broker,
            "worker": worker,
            "worker_last_seen": worker_last_seen,
        },
        status=200 if ok else 503,
    )


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Home dashboard: org units by type, people, recent jobs."""
    from closedloop.web.dashboard import home_context

    if request.membership is None:  # type: ignore[attr-defined]
        return render(request, "web/no_account.html", status=403)
    return render(request, "web/home.html", home_context(request.membership))  # type: ignore[attr-defined]
