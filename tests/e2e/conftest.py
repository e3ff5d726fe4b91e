"""Playwright fixtures: Debian's Chromium against pytest-django's live server.

Without /usr/bin/chromium the end-to-end tests skip, except with CI=true, where they
fail: CI must run them. Every page visited can be saved with ``shot(page, name)`` under
``var/screenshots/``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)."
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests
    # make between browser steps are still plain synchronous calls.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=str(CHROMIUM),
                args=["--no-sandbox", "--disable-background-networking"],
            )
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def new_page(browser: Any, live_server: Any) -> Iterator[Callable[..., Any]]:
    """``new_page(locale="en", viewport=None)``: a page in a fresh browser context."""
    contexts: list[Any] = []

    def make(locale: str = "en", viewport: dict[str, int] | None = None) -> Any:
        context = browser.new_context(
            base_url=live_server.url,
            locale=locale,
            viewport=viewport or {"width": 1280, "height": 900},
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def shot() -> Callable[[Any, str], Path]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(page: Any, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save


@pytest.fixture
def log_in() -> Callable[[Any, str, str], None]:
    def submit(page: Any, email: str, password: str) -> None:
        page.goto("/accounts/login/")
        page.fill("#id_username", email)
        page.fill("#id_password", password)
        page.click("form:has(#id_password) button[type=submit]")
        page.wait_for_url(lambda url: "/accounts/login/" not in url)

    return submit


@pytest.fixture(autouse=True)
def jobs_run_in_the_request() -> Iterator[None]:
    """Celery tasks run eagerly, so an import finishes while the browser watches."""
    from closedloop.celery_app import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous
