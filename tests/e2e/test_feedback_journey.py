"""An instructor's feedback journey in Chromium, on the real stack: upload a CSV, merge a
second one, build a filter, write an email with a condition, preview it, send it to a
real local SMTP server, see the delivery counts and an "opened" after the tracking pixel
is fetched. Then the same pages on a phone, in Arabic."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest

from closedloop.core.tenancy import account_scope
from closedloop.feedback.models import Delivery, Workflow
from closedloop.feedback.tests import conftest as feedback_fixtures
from closedloop.feedback.tests import test_delivery_support as delivery_support

# the feedback tests' workflow factory (six learners)
make_workflow = feedback_fixtures.make_workflow

expect = pytest.importorskip("playwright.sync_api").expect
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}

SCORES_CSV = (
    "email,name,score\n"
    "ana@example.org,Ana,91.5\n"
    "ben@example.org,Ben,48\n"
    "chloe@example.org,Chloé,75.25\n"
    "dan@example.org,Dan,\n"
    "eve@example.org,Eve,62\n"
    "femi@example.org,Femi,30.5\n"
)
# a second file: a new column, one row the table does not have yet, one empty value
FORUM_CSV = (
    "email,forum posts\n"
    "ana@example.org,12\n"
    "ben@example.org,0\n"
    "chloe@example.org,2\n"
    "dan@example.org,3\n"
    "eve@example.org,\n"
    "gus@example.org,7\n"
)
# score >= 50: Ana, Chloé, Eve (Dan's and Gus's scores are empty)
PASSING = {"ana@example.org": "Ana", "chloe@example.org": "Chloé", "eve@example.org": "Eve"}
FORUM_NUDGE = "Please join the discussion forum this week."


# --- a real SMTP server (the delivery tests' aiosmtpd fixture) -----------------------------

smtp = delivery_support.smtp_server


def _html_of(message: Any) -> str:
    part = message.get_body(preferencelist=("html", "plain"))
    return str(part.get_content()) if part is not None else ""


# --- helpers --------------------------------------------------------------------------------


def _count(page: Any, testid: str) -> int:
    text = page.locator(f'[data-testid="{testid}"]').first.inner_text()
    return int(re.sub(r"[^\d]", "", text) or "0")


def _upload(page: Any, workflow_id: int, path: Any) -> None:
    """Steps 1 and 2 of the wizard: the CSV source, then the columns as detected."""
    page.goto(f"/feedback/{workflow_id}/data/")
    page.click('[data-testid="source-csv"]')
    page.set_input_files('[data-testid="source-form"] input[type=file]', str(path))
    page.click('[data-testid="source-form"] button[type=submit]')
    page.wait_for_selector('[data-testid="columns-form"]')


def test_upload_merge_filter_write_preview_send_and_track(
    world, new_page, log_in, shot, smtp, live_server, tmp_path
):
    page = new_page()
    log_in(page, world.alice.email, world.password)

    # a new workflow
    page.goto("/feedback/")
    page.click('[data-testid="workflow-create"]')
    page.fill("#id_name", "Midterm 2026")
    page.fill("#id_description", "Feedback on the midterm")
    shot(page, "feedback-01-workflow-create")
    page.click('[data-testid="workflow-create-form"] button[type=submit]')
    page.wait_for_url(re.compile(r"/feedback/\d+/table/"))
    workflow_id = int(re.search(r"/feedback/(\d+)/", page.url).group(1))  # type: ignore[union-attr]
    with account_scope(world.account):
        assert Workflow.objects.get(pk=workflow_id).owner_id == world.alice.pk

    # upload the first CSV: email is recognised as the key
    scores = tmp_path / "scores.csv"
    scores.write_text(SCORES_CSV, encoding="utf-8")
    _upload(page, workflow_id, scores)
    expect(page.locator('[data-testid="staged-summary"]')).to_contain_text("6")
    page.check('[data-testid="columns-form"] input[name="key-0"]')
    shot(page, "feedback-02-upload-columns")
    page.click('[data-testid="columns-next"]')
    page.wait_for_selector('[data-testid="counts"]')
    assert _count(page, "count-added") == 6
    shot(page, "feedback-03-upload-preview")
    page.click('[data-testid="confirm"]')
    expect(page.locator('[data-testid="result"]')).to_contain_text("6")
    page.goto(f"/feedback/{workflow_id}/table/")
    expect(page.locator('[data-testid="data-row"]')).to_have_count(6)
    shot(page, "feedback-04-table")

    # merge a second CSV (outer): one column added, one row added, nothing dropped
    forum = tmp_path / "forum.csv"
    forum.write_text(FORUM_CSV, encoding="utf-8")
    _upload(page, workflow_id, forum)
    page.click('[data-testid="columns-next"]')
    page.wait_for_selector('[data-testid="keys-form"]')
    page.select_option('[data-testid="keys-form"] select[name="left_on"]', "email")
    page.select_option('[data-testid="keys-form"] select[name="right_on"]', "email")
    page.check('[data-testid="keys-form"] input[name="how"][value="outer"]')
    shot(page, "feedback-05-merge-keys")
    page.click('[data-testid="keys-next"]')
    page.wait_for_selector('[data-testid="counts"]')
    assert _count(page, "count-added") == 1
    assert _count(page, "count-dropped") == 0
    # Ana, Ben, Chloé and Dan get a value; Eve's is empty and Femi is not in the file
    assert _count(page, "count-updated") == 4
    assert _count(page, "count-unchanged") == 2
    tags = page.locator('[data-testid="column-tags"]')
    expect(tags.locator('[data-tag="new"]')).to_have_count(1)
    expect(tags).to_contain_text("forum posts")
    shot(page, "feedback-06-merge-preview")
    page.click('[data-testid="confirm"]')
    expect(page.locator('[data-testid="result"]')).to_contain_text("1")
    page.goto(f"/feedback/{workflow_id}/table/")
    expect(page.locator('[data-testid="data-row"]')).to_have_count(7)
    expect(page.locator('[data-testid="data-table"]')).to_contain_text("forum posts")
    shot(page, "feedback-07-table-merged")

    # a filter built with the visual builder; the live count follows the rules
    page.goto(f"/feedback/{workflow_id}/filters/")
    page.click('[data-testid="filter-create"]')
    page.fill('[data-testid="filter-form"] input[name="name"]', "Passed the midterm")
    builder = page.locator('[data-testid="condition-builder"]')
    count = builder.locator('[data-testid="builder-count"]')
    expect(count).to_have_attribute("data-count", "7")
    builder.locator("[data-builder-add-rule]").first.click()
    builder.locator("[data-builder-field]").last.select_option("score")
    builder.locator("[data-builder-operator]").last.select_option("greater_or_equal")
    builder.locator("[data-builder-value]").last.fill("50")
    expect(count).to_have_attribute("data-count", "3")
    shot(page, "feedback-08-filter-builder")
    page.click('[data-testid="filter-save"]')
    row = page.locator('[data-testid="filter-row"]', has_text="Passed the midterm")
    expect(row.locator('[data-testid="filter-count"]')).to_have_text("3")
    shot(page, "feedback-09-filters")

    # an email action on the filter's rows
    page.goto(f"/feedback/{workflow_id}/actions/")
    page.click('[data-testid="new-action"]')
    page.click('a[href$="?type=email"]')
    page.check("#type-email")
    page.fill("#id_name", "Midterm feedback")
    option = page.locator("#id_filter option", has_text="Passed the midterm")
    page.select_option("#id_filter", option.get_attribute("value"))
    shot(page, "feedback-10-action-create")
    page.click('[data-testid="create-action"]')
    page.wait_for_selector('[data-testid="action-form"]')
    action_id = int(re.search(r"/actions/(\d+)/", page.url).group(1))  # type: ignore[union-attr]

    # a condition, built with the same builder (counted within the action's rows)
    page.click('[data-testid="add-condition"]')
    page.fill("#id_name", "Quiet")
    builder = page.locator('[data-testid="condition-builder"]')
    count = builder.locator('[data-testid="builder-count"]')
    expect(count).to_have_attribute("data-count", "3")
    builder.locator("[data-builder-add-rule]").first.click()
    builder.locator("[data-builder-field]").last.select_option("forum posts")
    builder.locator("[data-builder-operator]").last.select_option("less")
    builder.locator("[data-builder-value]").last.fill("5")
    expect(count).to_have_attribute("data-count", "1")  # Chloé (2); Eve's is empty
    shot(page, "feedback-11-condition-builder")
    page.click('[data-testid="save-condition"]')
    page.wait_for_selector('[data-testid="action-form"]')
    expect(page.locator('[data-testid="condition-count"]')).to_have_text("1")

    # the text: values, then the condition inserted with the toolbar
    page.fill("#id_subject", "Your midterm, {{ name }}")
    text = page.locator('[data-testid="text-content"]')
    text.fill("<p>Dear {{ name }}, your score is {{ score }}.</p>\n")
    text.click()
    page.keyboard.press("Control+End")
    page.select_option('[data-testid="insert-condition-select"]', "Quiet")
    page.click('[data-testid="insert-condition"]')
    assert "{% if Quiet %}{% endif %}" in text.input_value()
    page.keyboard.type(f"<p>{FORUM_NUDGE}</p>")
    assert f"{{% if Quiet %}}<p>{FORUM_NUDGE}</p>{{% endif %}}" in text.input_value()
    page.click('[data-testid="save-action"]')
    page.wait_for_selector('[data-testid="action-form"]')
    expect(page.locator('[data-testid="form-error"]')).to_have_count(0)

    # the preview: message 1 of 3, then the next row, with the condition's value
    body = page.locator('[data-testid="preview-body"]')
    expect(page.locator('[data-testid="preview-position"]')).to_contain_text("1")
    expect(page.locator('[data-testid="preview-position"]')).to_contain_text("3")
    expect(body).to_contain_text("Dear Ana, your score is 91.5.")
    assert FORUM_NUDGE not in body.inner_text()
    quiet = page.locator('[data-testid="preview-conditions"] [data-value]')
    expect(quiet).to_have_attribute("data-value", "false")
    shot(page, "feedback-12-editor-preview")
    page.click('[data-testid="preview-next"]')
    expect(body).to_contain_text("Dear Chloé, your score is 75.25.")
    expect(body).to_contain_text(FORUM_NUDGE)
    expect(quiet).to_have_attribute("data-value", "true")
    expect(page.locator('[data-testid="preview-subject"]')).to_have_text("Your midterm, Chloé")
    shot(page, "feedback-13-preview-next")

    # send it: options, recipients, confirmation
    page.click('[data-testid="run-action"]')
    page.select_option('[data-testid="item-column"]', "email")
    page.check('[data-testid="track-read"]')
    shot(page, "feedback-14-run-options")
    page.click('[data-testid="run-next"]')
    expect(page.locator('[data-testid="recipients"] input[name="exclude"]')).to_have_count(3)
    page.click('[data-testid="run-next"]')
    expect(page.locator('[data-testid="run-total"]')).to_have_text("3")
    shot(page, "feedback-15-run-confirm")
    page.click('[data-testid="run-start"]')
    page.wait_for_url(re.compile(r"/feedback/\d+/runs/\d+/"))
    run_url = page.url
    expect(page.locator('[data-testid="count-sent"]')).to_have_text("3", timeout=30_000)
    assert _count(page, "count-failed") == 0
    assert _count(page, "count-opened") == 0
    expect(page.locator('[data-testid="delivery-row"][data-status="sent"]')).to_have_count(3)
    shot(page, "feedback-16-run-sent")

    # the SMTP server got exactly those three messages, personalized
    assert sorted(r for m in smtp.received for r in m.rcpt_tos) == sorted(PASSING)
    by_recipient = {m.rcpt_tos[0]: m.message for m in smtp.received}
    for address, name in PASSING.items():
        message = by_recipient[address]
        assert message["Subject"] == f"Your midterm, {name}"
        assert f"Dear {name}" in _html_of(message)
        assert (FORUM_NUDGE in _html_of(message)) == (address == "chloe@example.org")

    # the reader opens one email: its tracking pixel is fetched
    html = _html_of(by_recipient["ana@example.org"])
    pixel = re.search(r'<img[^>]+src="([^"]*/trck/[^"]+)"', html)
    assert pixel is not None, html
    path = urlsplit(pixel.group(1)).path
    response = page.request.get(live_server.url + path)
    assert response.status == 200
    assert response.headers["content-type"].startswith("image/")
    page.goto(run_url)
    expect(page.locator('[data-testid="count-opened"]')).to_have_text("1")
    with account_scope(world.account):
        opened = Delivery.objects.filter(run__action_id=action_id, opened_at__isnull=False)
        assert list(opened.values_list("recipient", flat=True)) == ["ana@example.org"]
    shot(page, "feedback-17-run-opened")

    # the read is counted in the table too (EmailRead_1 of Ana's row)
    page.goto(f"/feedback/{workflow_id}/table/")
    expect(page.locator('[data-testid="data-table"]')).to_contain_text("EmailRead_1")
    shot(page, "feedback-18-table-email-read")


def test_workflow_pages_on_a_phone_in_arabic(world, make_workflow, new_page, log_in, shot):
    workflow = make_workflow(name="Course", owner=world.alice)
    from closedloop.feedback import actions

    with account_scope(world.account):
        action = actions.action_create(
            workflow=workflow,
            actor=world.alice,
            name="Midterm feedback",
            action_type="email",
            subject="Your midterm, {{ name }}",
            text_content="<p>Dear {{ name }}, your score is {{ score }}.</p>",
        )
    page = new_page(locale="ar", viewport=PHONE)
    log_in(page, world.alice.email, world.password)

    def fits(name: str) -> None:
        assert page.get_attribute("html", "dir") == "rtl"
        assert page.get_attribute("html", "lang") == "ar"
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        shot(page, name)
        assert overflow <= 1, f"{page.url} is {overflow}px wider than the phone"

    page.goto(f"/feedback/{workflow.pk}/table/")
    expect(page.locator('[data-testid="data-row"]')).to_have_count(6)
    fits("feedback-20-table-phone-ar")
    page.goto(f"/feedback/{workflow.pk}/actions/{action.pk}/")
    expect(page.locator('[data-testid="preview-body"]')).to_contain_text("Ana")
    fits("feedback-21-editor-phone-ar")
