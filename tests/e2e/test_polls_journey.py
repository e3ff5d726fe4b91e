"""An admin's polls journey in Chromium, against the RapidPro double over HTTP: add the
connection (the test shows the workspace name), pick panels linked to org units, cohorts
and flows in the wizard, sync, read a poll's charts and map, open a poll run and message
its non-respondents — the double receives exactly those contacts. Then the poll page on a
phone: nothing wider than the screen."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from closedloop.core.tenancy import account_scope
from closedloop.polls.models import (
    Connection,
    ContactGroup,
    GroupRole,
    Poll,
    PollRun,
    Response,
    ResponseStatus,
)
from closedloop.polls.rapidpro_double import FakeRapidPro

expect = pytest.importorskip("playwright.sync_api").expect
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
WORKSPACE = "Atlantis Health Workspace"
NUDGE = "We miss your answers: please reply to this week's poll."


@pytest.fixture
def rapidpro() -> Iterator[FakeRapidPro]:
    """Two district panels named like the world's districts, three cohorts, two polls."""
    server = FakeRapidPro(seed=11, token="e2e-token")
    server.state.org["name"] = WORKSPACE
    server.generate(
        contacts=40, polls=2, days=21, regions={"North": ["Northvale"], "South": ["Southport"]}
    )
    server.start()
    yield server
    server.stop()


def _console_errors(page: Any) -> list[str]:
    errors: list[str] = []

    def on_console(message: Any) -> None:
        url = (message.location or {}).get("url", "")
        if message.type == "error" and not url.endswith("/favicon.ico"):
            errors.append(f"{message.text} ({url})")

    page.on("console", on_console)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def _page_width(page: Any) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth"))


def test_connect_set_up_sync_read_charts_and_message_non_respondents(
    world, new_page, log_in, shot, rapidpro
):
    page = new_page()
    errors = _console_errors(page)
    log_in(page, world.alice.email, world.password)

    # 1. the connection: "Test connection" shows the workspace, then "Test and save"
    page.goto("/polls/setup/")
    shot(page, "polls-01-setup-empty")
    page.goto("/polls/setup/connections/new/")
    page.fill("#id_name", "Atlantis RapidPro")
    page.fill("#id_host_url", rapidpro.url)
    page.fill("#id_token", rapidpro.token)
    page.click('[data-testid="check-connection"]')
    expect(page.locator("#check-result")).to_contain_text(WORKSPACE)
    shot(page, "polls-02-connection-tested")
    page.click('[data-testid="save-connection"]')
    page.wait_for_url(re.compile(r"/polls/setup/connections/\d+/panels/"))
    expect(page.locator('[data-testid="no-groups"]')).to_be_visible()
    page.click('[data-testid="refresh"]')  # reads flows, groups and fields from RapidPro
    page.wait_for_selector('[data-testid="group-row"]')
    with account_scope(world.account):
        connection = Connection.objects.get()
        assert connection.workspace_name == WORKSPACE
        groups = {g.name: g for g in ContactGroup.objects.filter(connection=connection)}
    assert {"Northvale", "Southport", "Teachers"} <= set(groups)

    # 2. panels: the two districts, linked to the registry's districts of the same name
    panels = {"Northvale": world.district_n1, "Southport": world.district_s1}
    for name, unit in panels.items():
        row = page.locator(f'[data-testid="group-row"][data-group="{name}"]')
        row.locator(f'input[name="panel_{groups[name].pk}"]').check()
        row.locator('[data-testid="panel-unit"]').select_option(str(unit.pk))
    shot(page, "polls-03-wizard-panels")
    page.click('[data-testid="save-step"]')
    page.wait_for_url(re.compile(r"/cohorts/"))

    # 3. cohorts: every other group, each becoming a people cohort of its name
    for name in ("Teachers", "Parents", "Health workers"):
        page.locator(f'[data-testid="group-row"][data-group="{name}"] input[type=checkbox]').check()
    shot(page, "polls-04-wizard-cohorts")
    page.click('[data-testid="save-step"]')
    page.wait_for_url(re.compile(r"/flows/"))

    # 4. flows: both become polls
    for box in page.locator('[data-testid="flows-form"] input[name="flow"]').all():
        box.check()
    shot(page, "polls-05-wizard-flows")
    page.click('[data-testid="save-step"]')
    page.wait_for_url(re.compile(r"/fields/"))
    page.click('[data-testid="save-step"]')
    page.wait_for_url(re.compile(r"/sync/"))
    with account_scope(world.account):
        roles = dict(ContactGroup.objects.values_list("name", "role"))
        assert roles["Northvale"] == roles["Southport"] == GroupRole.PANEL
        assert roles["Teachers"] == GroupRole.COHORT
        assert ContactGroup.objects.get(name="Northvale").org_unit_id == world.district_n1.pk
        assert Poll.objects.filter(is_active=True).count() == 2

    # 5. sync now (the job runs in the request: Celery is eager in these tests)
    page.click('[data-testid="sync-now"]')
    expect(page.locator('[data-testid="health-last-success"]')).not_to_contain_text("—")
    page.reload()
    expect(page.locator('[data-testid="health-counts"]')).to_be_visible()
    shot(page, "polls-06-synced")
    with account_scope(world.account):
        assert Response.objects.count() > 20
        poll = Poll.objects.filter(is_active=True).order_by("pk").first()
        assert poll is not None

    # 6. a poll's charts render (ECharts draws into a canvas) without console errors
    page.goto(f"/polls/polls/{poll.pk}/")
    cards = page.locator('[data-testid="question-card"]')
    expect(cards.first).to_be_visible()
    page.wait_for_selector('[data-testid="question-card"] canvas')
    page.wait_for_load_state("networkidle")
    assert page.locator('[data-testid="question-card"] canvas').count() >= 1
    shot(page, "polls-07-poll-charts")

    # 7. the map tab
    page.click('[data-testid="tab-map"]')
    expect(page.locator('[data-testid="poll-map"]')).to_be_visible()
    page.wait_for_load_state("networkidle")
    expect(page.locator('[data-testid="map-table"]')).to_contain_text("Northvale")
    shot(page, "polls-08-poll-map")

    # 8. a poll run with non-respondents, and a message to them
    with account_scope(world.account):
        pollrun = (
            PollRun.objects.filter(
                poll=poll,
                responses__is_active=True,
                responses__status=ResponseStatus.EMPTY,
                responses__contact__is_active=True,
            )
            .order_by("-pk")
            .first()
        )
        assert pollrun is not None
        expected = set(
            Response.objects.filter(
                pollrun=pollrun,
                is_active=True,
                status=ResponseStatus.EMPTY,
                contact__is_active=True,
                contact__status="active",
            ).values_list("contact__uuid", flat=True)
        )
    page.goto(f"/polls/pollruns/{pollrun.pk}/")
    expect(page.locator('[data-testid="pollrun-counts"]')).to_be_visible()
    page.wait_for_load_state("networkidle")
    shot(page, "polls-09-pollrun")
    page.click('[data-testid="tab-participation"]')
    page.wait_for_load_state("networkidle")
    shot(page, "polls-10-pollrun-participation")
    before = len(rapidpro.state.broadcasts)
    page.click('[data-testid="send-message"]')
    page.wait_for_selector('[data-testid="message-form"]')
    page.check('[data-testid="message-form"] input[name="audience"][value="non_respondents"]')
    page.fill('[data-testid="message-form"] textarea[name="text"]', NUDGE)
    shot(page, "polls-11-message")
    page.click('[data-testid="send"]')
    page.wait_for_load_state("networkidle")
    shot(page, "polls-12-message-sent")
    sent = rapidpro.state.broadcasts[before:]
    assert sent, "the double received no broadcast"
    received = {c["uuid"] for b in sent for c in b["contacts"]}
    assert received == expected
    assert all(NUDGE in str(b["text"]) for b in sent)

    # 9. on a phone: the polls pages are no wider than the screen
    phone = new_page(viewport=PHONE)
    phone_errors = _console_errors(phone)
    log_in(phone, world.alice.email, world.password)
    for path, name in (
        (f"/polls/polls/{poll.pk}/", "polls-13-phone-poll"),
        (f"/polls/pollruns/{pollrun.pk}/", "polls-14-phone-pollrun"),
        ("/polls/", "polls-15-phone-home"),
    ):
        phone.goto(path)
        phone.wait_for_load_state("networkidle")
        shot(phone, name)
        assert _page_width(phone) <= PHONE["width"], f"{path} is {_page_width(phone)} px wide"
    assert not errors, errors
    assert not phone_errors, phone_errors
