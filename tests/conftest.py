"""Shared by the tests under tests/: in CI, an end-to-end or integration test may not skip.

Those tests skip locally when a service (Chromium, Redis, PostgreSQL) is missing, with
the reason. With CI=true a skip would hide a broken CI machine, so it becomes a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
MUST_RUN_IN_CI = ("e2e", "integration")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not (IN_CI and report.skipped) or hasattr(report, "wasxfail"):
        return
    if any(item.get_closest_marker(name) for name in MUST_RUN_IN_CI):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"CI must run this test, but it was skipped: {reason}"
