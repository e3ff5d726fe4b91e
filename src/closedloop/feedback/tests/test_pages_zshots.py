import os
from pathlib import Path

import pytest

from closedloop.core.tenancy import account_scope

pytestmark = [pytest.mark.django_db(transaction=True)]
OUT = Path(os.environ["SHOTS_DIR"])


@pytest.fixture
def browser():
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-background-networking"])
        yield b
        b.close()


def test_shots(world, make_workflow, browser, live_server):
    from closedloop.feedback import services
    from closedloop.feedback.models import Column, Filter, View
    from closedloop.feedback.tests.test_pages_table import big_class

    data = big_class(120)
    wf = make_workflow()
    big = make_workflow(name="Biology 101 — spring term", data=data)
    with account_scope(world.account):
        services.workflow_share(workflow=wf, actor=world.alice, email=world.sam.email, role="editor")
        services.workflow_star(workflow=big, user=world.alice, starred=True)
        score = Column.objects.get(workflow=wf, name="score")
        attempts = Column.objects.get(workflow=wf, name="attempts")
        submitted = Column.objects.get(workflow=wf, name="submitted")
        services.workflow_set_attribute(workflow=wf, actor=world.alice, name="course", value="BIO 101")
    pages = [
        ("list", "/feedback/"),
        ("table", f"/feedback/{wf.pk}/table/"),
        ("table-big", f"/feedback/{big.pk}/table/?q=sam&sort={Column.objects.filter(workflow=big, name='score').values_list('pk', flat=True).first() if False else ''}"),
        ("row", f"/feedback/{wf.pk}/rows/edit/?key=email&value=ben@example.org"),
        ("row-add", f"/feedback/{wf.pk}/rows/add/"),
        ("column-add", f"/feedback/{wf.pk}/columns/add/"),
        ("column-edit", f"/feedback/{wf.pk}/columns/{score.pk}/"),
        ("stats", f"/feedback/{wf.pk}/stats/"),
        ("stats-score", f"/feedback/{wf.pk}/stats/columns/{score.pk}/"),
        ("stats-attempts", f"/feedback/{wf.pk}/stats/columns/{attempts.pk}/"),
        ("stats-submitted", f"/feedback/{wf.pk}/stats/columns/{submitted.pk}/"),
        ("stats-row", f"/feedback/{wf.pk}/stats/row/?key=email&value=chloe@example.org"),
        ("logs", f"/feedback/{wf.pk}/logs/"),
        ("settings", f"/feedback/{wf.pk}/settings/"),
        ("new", "/feedback/new/"),
    ]
    only = os.environ.get("SHOTS_ONLY", "")
    for locale, viewport, tag in [("en", {"width": 1280, "height": 900}, "desktop"),
                                  ("en", {"width": 390, "height": 844}, "phone"),
                                  ("ar", {"width": 1280, "height": 900}, "ar")]:
        ctx = browser.new_context(base_url=live_server.url, locale=locale, viewport=viewport)
        page = ctx.new_page()
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto("/accounts/login/")
        page.fill("#id_username", world.alice.email)
        page.fill("#id_password", world.password)
        page.click("form:has(#id_password) button[type=submit]")
        page.wait_for_url(lambda url: "/accounts/login/" not in url)
        for name, url in pages:
            if only and name not in only.split(","):
                continue
            if tag != "desktop" and name in ("row-add", "column-add", "new", "logs"):
                continue
            page.goto(url)
            page.wait_for_timeout(600)
            page.screenshot(path=str(OUT / f"{tag}-{name}.png"), full_page=True)
        print(tag, "console errors:", errors)
        ctx.close()
