# ruff: noqa: F811 - fixtures imported from test_delivery_support
"""Run pages, the outbox page and the read-tracking pixel, with tenancy and sharing."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from closedloop.core.tenancy import account_scope
from closedloop.feedback import services
from closedloop.feedback.models import ActionRun, Delivery, WorkflowLog
from closedloop.feedback.runs import start_run
from closedloop.feedback.tests.test_delivery_support import smtp_server  # noqa: F401


@pytest.fixture
def outbox_only(settings):
    settings.EMAIL_OUTBOX_ONLY = True
    settings.EMAIL_BURST = 0


@pytest.fixture
def action(make_workflow, world, outbox_only):
    from closedloop.feedback.actions import action_create

    workflow = make_workflow()
    with account_scope(world.account):
        return action_create(
            workflow=workflow,
            actor=world.alice,
            name="Feedback",
            action_type="email",
            text_content="<p>Hello {{ name }}</p>",
            subject="Hi {{ name }}",
        )


def share(action: Any, world: Any, user: Any, role: str) -> None:
    with account_scope(world.account):
        services.workflow_share(
            workflow=action.workflow, actor=world.alice, email=user.email, role=role
        )


def a_run(action: Any, world: Any, **options: Any) -> ActionRun:
    with account_scope(world.account):
        return start_run(action=action, actor=world.alice, options={"item_column": "email", **options},
                         run_now=True)  # fmt: skip


def form_url(action: Any) -> str:
    return reverse("feedback:run_create", args=[action.workflow_id, action.pk])


# --- tenancy and sharing ------------------------------------------------------------------


def test_outsiders_and_unshared_members_get_404_everywhere(action, world, client_for):
    run = a_run(action, world)
    wid = action.workflow_id
    urls = [
        form_url(action),
        reverse("feedback:run_list", args=[wid]),
        reverse("feedback:run_detail", args=[wid, run.pk]),
    ]
    for user in (world.charlie, world.bob):
        client = client_for(user)
        for url in urls:
            assert client.get(url).status_code == 404, (user, url)
        for name in ("resend_failed", "run_cancel"):
            assert client.post(reverse(f"feedback:{name}", args=[wid, run.pk])).status_code == 404


def test_a_viewer_sees_runs_but_cannot_start_resend_or_cancel(action, world, client_for):
    run = a_run(action, world)
    share(action, world, world.bob, "viewer")
    client = client_for(world.bob)
    wid = action.workflow_id
    assert client.get(reverse("feedback:run_list", args=[wid])).status_code == 200
    page = client.get(reverse("feedback:run_detail", args=[wid, run.pk]))
    assert page.status_code == 200 and b"resend-failed" not in page.content
    assert client.get(form_url(action)).status_code == 403
    assert client.post(reverse("feedback:resend_failed", args=[wid, run.pk])).status_code == 403
    assert client.post(reverse("feedback:run_cancel", args=[wid, run.pk])).status_code == 403


def test_an_editor_may_run_the_action(action, world, client_for):
    share(action, world, world.bob, "editor")
    assert client_for(world.bob).get(form_url(action)).status_code == 200


def test_a_run_of_another_workflow_is_404_under_this_one(action, world, client_for, make_workflow):
    run = a_run(action, world)
    other = make_workflow(name="Other")
    response = client_for(world.alice).get(reverse("feedback:run_detail", args=[other.pk, run.pk]))
    assert response.status_code == 404


# --- the run form -------------------------------------------------------------------------


def test_the_form_walks_options_recipients_confirm_and_start(
    action, world, client_for, django_capture_on_commit_callbacks
):
    client = client_for(world.alice)
    page = client.get(form_url(action))
    assert page.status_code == 200
    assert b'name="item_column"' in page.content and b'name="cc"' in page.content
    options = {"item_column": "email", "subject": "Hi {{ name }}", "cc": "", "bcc": ""}
    step2 = client.post(form_url(action), {**options, "step": "exclude"})
    assert step2.status_code == 200
    assert step2.content.count(b'name="exclude"') == 6 and b"chloe@example.org" in step2.content
    step3 = client.post(
        form_url(action), {**options, "exclude": ["ben@example.org"], "step": "confirm"}
    )
    assert b'data-testid="run-total">5<' in step3.content
    assert b"ben@example.org" in step3.content  # listed as excluded
    with django_capture_on_commit_callbacks(execute=True):
        started = client.post(
            form_url(action), {**options, "exclude": ["ben@example.org"], "step": "start"}
        )
    assert started.status_code == 302
    with account_scope(world.account):
        run = ActionRun.objects.get()
        assert started["Location"] == reverse(
            "feedback:run_detail", args=[action.workflow_id, run.pk]
        )
        assert run.options["exclude_values"] == ["ben@example.org"]
        assert (
            sorted(Delivery.objects.filter(run=run).values_list("status", flat=True))
            == ["sent"] * 5
        )


def test_bad_options_say_which_field_and_create_nothing(action, world, client_for):
    client = client_for(world.alice)
    bad = client.post(
        form_url(action), {"item_column": "email", "subject": "x", "bcc": "nope", "step": "start"}
    )
    assert bad.status_code == 400
    assert "“nope” is not a valid email address" in bad.content.decode()
    assert b'id="id_bcc" name="bcc" value="nope"' in bad.content.replace(b" is-invalid", b"")
    missing = client.post(
        form_url(action), {"item_column": "no such column", "subject": "x", "step": "exclude"}
    )
    assert missing.status_code == 400 and "no column named" in missing.content.decode()
    broken = client.post(
        form_url(action), {"item_column": "email", "subject": "{% if %}", "step": "exclude"}
    )
    assert broken.status_code == 400
    with account_scope(world.account):
        assert not ActionRun.objects.exists()


def test_a_personalized_text_action_has_no_run_form(make_workflow, world, client_for):
    from closedloop.feedback.actions import action_create

    workflow = make_workflow()
    with account_scope(world.account):
        text = action_create(workflow=workflow, actor=world.alice, name="Page", action_type="personalized_text",
                             text_content="x")  # fmt: skip
    assert client_for(world.alice).get(form_url(text)).status_code == 404


# --- the run page -------------------------------------------------------------------------


def test_the_run_page_shows_counts_chart_and_recipients(action, world, client_for, smtp_server):
    smtp_server.reject = {"dan@example.org"}
    run = a_run(action, world)
    client = client_for(world.alice)
    url = reverse("feedback:run_detail", args=[action.workflow_id, run.pk])
    page = client.get(url).content.decode()
    assert 'data-testid="count-sent">5<' in page and 'data-testid="count-failed">1<' in page
    assert (
        'id="run-donut-data"' in page and 'hx-trigger="every 2s"' not in page
    )  # finished: no polling
    assert page.count('data-testid="delivery-row"') == 6
    assert "550" in page  # the error of dan's message
    failed = client.get(url, {"part": "deliveries", "status": "failed"}).content.decode()
    assert failed.count('data-testid="delivery-row"') == 1 and "dan@example.org" in failed
    assert "<html" not in failed  # a fragment for htmx
    progress = client.get(url, {"part": "progress"}).content.decode()
    assert 'data-testid="count-sent">5<' in progress and "<html" not in progress
    searched = client.get(url, {"part": "deliveries", "q": "chloe"}).content.decode()
    assert searched.count('data-testid="delivery-row"') == 1


def test_a_running_run_polls_for_progress(action, world, client_for):
    with account_scope(world.account):
        run = ActionRun.objects.create(account=world.account, action=action, status="sending")
    page = client_for(world.alice).get(
        reverse("feedback:run_detail", args=[action.workflow_id, run.pk])
    )
    assert b'hx-trigger="every 2s"' in page.content


def test_resend_and_cancel_from_the_run_page(
    action, world, client_for, smtp_server, django_capture_on_commit_callbacks
):
    smtp_server.reject = {"dan@example.org"}
    run = a_run(action, world)
    smtp_server.reject = set()
    client = client_for(world.alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("feedback:resend_failed", args=[action.workflow_id, run.pk]))
    assert response.status_code == 302
    with account_scope(world.account):
        assert Delivery.objects.get(run=run, recipient="dan@example.org").status == "sent"
        later = ActionRun.objects.create(account=world.account, action=action, status="sending")
        Delivery.objects.create(
            account=world.account, run=later, channel="email", recipient="x@example.org"
        )
    client.post(reverse("feedback:run_cancel", args=[action.workflow_id, later.pk]))
    with account_scope(world.account):
        assert Delivery.objects.get(run=later).status == "cancelled"
        later.refresh_from_db()
        assert later.status == "cancelled"


def test_the_run_list_is_one_query_for_its_counts(
    action, world, client_for, django_assert_max_num_queries
):
    for _i in range(4):
        a_run(action, world)
    client = client_for(world.alice)
    url = reverse("feedback:run_list", args=[action.workflow_id])
    client.get(url)
    with django_assert_max_num_queries(14):
        page = client.get(url)
    assert page.content.count(b'data-testid="run-row"') == 4


# --- the outbox page ----------------------------------------------------------------------


def test_the_outbox_lists_messages_with_their_body_for_those_who_may_see_them(
    action, world, client_for
):
    a_run(action, world)
    url = reverse("feedback:outbox")
    alice = client_for(world.alice).get(url).content.decode()
    assert alice.count('data-testid="outbox-item"') == 6
    assert "<p>Hello Chloé</p>" in alice and "Hi Chloé" in alice
    assert (
        client_for(world.charlie).get(url).content.decode().count('data-testid="outbox-item"') == 0
    )
    assert client_for(world.bob).get(url).content.decode().count('data-testid="outbox-item"') == 0
    share(action, world, world.bob, "viewer")
    assert client_for(world.bob).get(url).content.decode().count('data-testid="outbox-item"') == 6


def test_the_outbox_page_has_a_bounded_number_of_queries(
    action, world, client_for, django_assert_max_num_queries
):
    a_run(action, world)
    a_run(action, world)
    client = client_for(world.alice)
    client.get(reverse("feedback:outbox"))
    with django_assert_max_num_queries(12):
        client.get(reverse("feedback:outbox"))


# --- read tracking ------------------------------------------------------------------------


def test_the_pixel_counts_opens_in_the_delivery_the_table_and_the_log(
    action, world, client, smtp_server
):
    from closedloop.feedback import table
    from closedloop.feedback.channels import make_token

    run = a_run(action, world, track_read=True)
    assert run.track_column == "EmailRead_1"
    msg = next(r for r in smtp_server.received if r.rcpt_tos[0] == "eve@example.org").message
    with account_scope(world.account):
        eve = Delivery.objects.get(run=run, recipient="eve@example.org")
    pixel_url = f"/trck/{make_token(eve.pk)}/"
    assert pixel_url in msg.get_content()
    client.logout()
    for _i in range(2):
        response = client.get(pixel_url)
        assert response.status_code == 200 and response["Content-Type"] == "image/gif"
        assert "no-cache" in response["Cache-Control"]
    with account_scope(world.account):
        eve.refresh_from_db()
        assert eve.open_count == 2 and eve.opened_at is not None
        columns = list(action.workflow.columns.all())
        values = {r["email"]: r["EmailRead_1"] for r in table.fetch_rows(action.workflow, columns)}
        assert values["eve@example.org"] == 2 and values["ana@example.org"] == 0
        assert WorkflowLog.objects.filter(name="action_email_read").count() == 2


def test_a_bad_token_still_gets_the_gif_and_counts_nothing(action, world, client):
    from closedloop.feedback.channels import make_token

    run = a_run(action, world, track_read=True)
    with account_scope(world.account):
        first = Delivery.objects.filter(run=run).first()
    token = make_token(first.pk)
    for bad in (token[:-2] + "xx", "garbage", make_token(999999)):
        response = client.get(f"/trck/{bad}/")
        assert response.status_code == 200 and response["Content-Type"] == "image/gif"
    with account_scope(world.account):
        assert not Delivery.objects.filter(open_count__gt=0).exists()
        assert not WorkflowLog.objects.filter(name="action_email_read").exists()
