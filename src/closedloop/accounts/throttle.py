"""Login throttling: after ``LOGIN_THROTTLE_ATTEMPTS`` failures for one email from one
address within ``LOGIN_THROTTLE_SECONDS``, logins are refused until that time has passed.

Counters live in Django's cache (the database cache by default, Redis when configured),
so every web process sees the same counts.
"""

from __future__ import annotations

import hashlib
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest


def client_address(request: HttpRequest | None) -> str:
    if request is None:
        return ""
    return str(request.META.get("REMOTE_ADDR", ""))


def _key(kind: str, email: str, address: str) -> str:
    digest = hashlib.sha256(f"{email.strip().lower()}|{address}".encode()).hexdigest()[:40]
    return f"login-{kind}:{digest}"


def seconds_locked(email: str, address: str) -> int:
    """How many seconds logins for this email and address stay refused (0: not locked)."""
    until = cache.get(_key("lock", email, address))
    if until is None:
        return 0
    return max(0, int(until - time.time()) + 1)


def record_failure(email: str, address: str) -> int:
    """Count a failure; returns the seconds locked if this failure reached the limit."""
    window = settings.LOGIN_THROTTLE_SECONDS
    key = _key("fail", email, address)
    cache.add(key, 0, window)
    try:
        failures = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, window)
        failures = 1
    if failures < settings.LOGIN_THROTTLE_ATTEMPTS:
        return 0
    cache.set(_key("lock", email, address), time.time() + window, window)
    cache.delete(key)
    return window


def reset(email: str, address: str) -> None:
    cache.delete_many([_key("fail", email, address), _key("lock", email, address)])
