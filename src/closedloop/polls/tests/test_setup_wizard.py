"""The per-connection setup wizard: panels → org units, cohorts, flows → polls, fields;
account polls settings; poll editing."""

from __future__ import annotations

import pytest
from django.urls import reverse

from closedloop.core.models import AuditEntry
from closedloop.core.tenancy import account_scope
from closedloop.people.models import Cohort
from closedloop.polls import testing as t
from closedloop.polls import views_wizard
from closedloop.polls.models import (
    Connection,
    Contact,
    ContactGroup,
    DataField,
    GroupRole,
    Poll,
    PollsSettings,
    Question,
    QuestionType,
)
from closedloop.registry.models import OrgUnit

pytestmark = pytest.mark.django_db


def _step(w, step):
    return reverse("polls:connection_step", args=[w.connection.pk, step])


def _group(w, name, role=""):
    with account_scope(w.w.account):
        return ContactGroup.objects.create(
            account=w.w.account, connection=w.connection, uuid=t.new_uuid(), name=name, role=role
        )


def _state(w):
    with account_scope(w.w.account):
        return {
            g.name: (g.role, g.org_unit_id, g.cohort_id)
            for g in ContactGroup.objects.filter(connection=w.connection)
        }


def _panel_post(w, rows):
    """rows: {group: (unit_id | "", mode)}; every panel-tab group not listed is unchecked."""
    data = {}
    for group, (unit, mode) in rows.items():
        data[f"panel_{group.pk}"] = "1"
        data[f"unit_{group.pk}"] = str(unit)
        data[f"mode_{group.pk}"] = mode
    return data


# --- panels ---------------------------------------------------------------------------------


def test_panels_page_lists_groups_and_units(polls_world, client_for):
    w = polls_world
    _group(w, "Eastern panel")
    response = client_for(w.w.alice).get(_step(w, "panels"))
    body = response.content.decode()
    assert response.status_code == 200
    assert "Eastern panel" in body and "North panel" in body
    assert "Teachers" not in body  # cohort groups are on the cohort tab
    assert "Atlantis › North › Northvale" in body  # unit options read as paths


def test_link_a_group_to_an_existing_org_unit(polls_world, client_for):
    w = polls_world
    east = _group(w, "Eastern panel")
    data = _panel_post(
        w,
        {
            east: (w.w.district_s1.pk, "link"),
            w.north: (w.w.region_north.pk, "link"),
            w.northvale: (w.w.district_n1.pk, "link"),
            w.south: (w.w.region_south.pk, "link"),
        },
    )
    response = client_for(w.w.alice).post(_step(w, "panels"), data)
    assert response.status_code == 302
    assert response["Location"] == _step(w, "cohorts")
    assert _state(w)["Eastern panel"] == ("panel", w.w.district_s1.pk, None)
    with account_scope(w.w.account):
        assert AuditEntry.objects.filter(
            object_type="polls.contactgroup", object_id=str(east.pk)
        ).exists()


def test_create_a_unit_under_a_parent_for_a_group(polls_world, client_for):
    w = polls_world
    east = _group(w, "Eastern panel")
    data = _panel_post(
        w,
        {
            east: (w.w.region_south.pk, "create"),
            w.north: (w.w.region_north.pk, "link"),
            w.northvale: (w.w.district_n1.pk, "link"),
            w.south: (w.w.region_south.pk, "link"),
        },
    )
    assert client_for(w.w.alice).post(_step(w, "panels"), data).status_code == 302
    with account_scope(w.w.account):
        unit = OrgUnit.objects.get(name="Eastern panel")
        assert unit.parent_id == w.w.region_south.pk
        assert unit.path.startswith(w.w.region_south.path)
        assert _state(w)["Eastern panel"] == ("panel", unit.pk, None)
    # saving again keeps the same unit (no duplicate)
    data[f"unit_{east.pk}"] = str(w.w.region_south.pk)
    assert client_for(w.w.alice).post(_step(w, "panels"), data).status_code == 302
    with account_scope(w.w.account):
        assert OrgUnit.objects.filter(name="Eastern panel").count() == 1


def test_creating_a_unit_whose_name_exists_under_the_parent_is_refused(polls_world, client_for):
    w = polls_world
    dup = _group(w, "Southport")  # South already has a "Southport" district
    before = _state(w)
    data = _panel_post(w, {dup: (w.w.region_south.pk, "create")})
    data |= _panel_post(
        w,
        {
            w.north: (w.w.region_north.pk, "link"),
            w.northvale: (w.w.district_n1.pk, "link"),
            w.south: (w.w.region_south.pk, "link"),
        },
    )
    response = client_for(w.w.alice).post(_step(w, "panels"), data)
    assert response.status_code == 400
    assert "already exists" in response.content.decode()
    assert _state(w) == before
    with account_scope(w.w.account):
        assert OrgUnit.objects.filter(name="Southport").count() == 1


@pytest.mark.parametrize("bad", ["999999", "abc", "other-account"])
def test_unknown_or_foreign_org_unit_is_a_row_error_and_nothing_is_saved(
    polls_world, client_for, bad
):
    w = polls_world
    east = _group(w, "Eastern panel")
    before = _state(w)
    unit = w.w.other_root.pk if bad == "other-account" else bad
    data = _panel_post(
        w,
        {
            east: (unit, "link"),
            w.north: (w.w.school_n1.pk, "link"),  # a valid change in the same post
            w.northvale: (w.w.district_n1.pk, "link"),
            w.south: (w.w.region_south.pk, "link"),
        },
    )
    response = client_for(w.w.alice).post(_step(w, "panels"), data)
    assert response.status_code == 400
    rows = {r["group"].name: r["error"] for r in response.context["rows"]}
    assert rows["Eastern panel"]
    assert not rows["North panel"]
    assert _state(w) == before


def test_a_panel_without_a_unit_is_a_row_error(polls_world, client_for):
    w = polls_world
    east = _group(w, "Eastern panel")
    response = client_for(w.w.alice).post(_step(w, "panels"), _panel_post(w, {east: ("", "link")}))
    assert response.status_code == 400
    assert {r["group"].name: r["error"] for r in response.context["rows"]}["Eastern panel"]
    assert _state(w)["North panel"][0] == "panel"  # unchanged


def test_unchecking_a_panel_releases_its_contacts(polls_world, client_for):
    w = polls_world
    data = _panel_post(
        w, {w.northvale: (w.w.district_n1.pk, "link"), w.south: (w.w.region_south.pk, "link")}
    )
    assert client_for(w.w.alice).post(_step(w, "panels"), data).status_code == 302
    assert _state(w)["North panel"] == ("", None, None)
    with account_scope(w.w.account):
        ana = Contact.objects.select_related("person").get(pk=w.ana.pk)
        assert (ana.panel_id, ana.org_unit_id, ana.person.org_unit_id) == (None, None, None)
        ben = Contact.objects.get(pk=w.ben.pk)
        assert ben.org_unit_id == w.w.district_n1.pk


def test_relinking_a_panel_moves_its_contacts(polls_world, client_for):
    w = polls_world
    data = _panel_post(
        w,
        {
            w.north: (w.w.school_n1.pk, "link"),
            w.northvale: (w.w.district_n1.pk, "link"),
            w.south: (w.w.region_south.pk, "link"),
        },
    )
    assert client_for(w.w.alice).post(_step(w, "panels"), data).status_code == 302
    with account_scope(w.w.account):
        ana = Contact.objects.select_related("person").get(pk=w.ana.pk)
        assert ana.org_unit_id == ana.person.org_unit_id == w.w.school_n1.pk


def test_large_registries_get_a_type_ahead(polls_world, client_for, monkeypatch):
    w = polls_world
    monkeypatch.setattr(views_wizard, "UNIT_SELECT_LIMIT", 2)
    client = client_for(w.w.alice)
    body = client.get(_step(w, "panels")).content.decode()
    assert 'data-testid="panel-search"' in body
    url = reverse("polls:connection_units", args=[w.connection.pk])
    found = client.get(url, {"group": w.north.pk, "q": "north"}).content.decode()
    assert "Atlantis › North" in found and f'name="unit_{w.north.pk}"' in found
    assert "South" not in found
    assert "Elsewhere" not in client.get(url, {"group": w.north.pk, "q": "else"}).content.decode()
    assert client.get(url, {"group": "999", "q": "x"}).status_code == 404


# --- cohorts --------------------------------------------------------------------------------


def test_cohorts_link_existing_or_create(polls_world, client_for):
    w = polls_world
    volunteers = _group(w, "Volunteers")
    nurses = _group(w, "Nurses")
    with account_scope(w.w.account):
        existing = Cohort.objects.create(account=w.w.account, name="Health workers")
    data = {
        f"cohort_{volunteers.pk}": "1",
        f"cohort_id_{volunteers.pk}": "new",
        f"cohort_{nurses.pk}": "1",
        f"cohort_id_{nurses.pk}": str(existing.pk),
        f"cohort_{w.teachers.pk}": "1",
        f"cohort_id_{w.teachers.pk}": str(w.teachers.cohort_id),
        # Parents unchecked: no longer a cohort
    }
    response = client_for(w.w.alice).post(_step(w, "cohorts"), data)
    assert response.status_code == 302 and response["Location"] == _step(w, "flows")
    state = _state(w)
    with account_scope(w.w.account):
        created = Cohort.objects.get(name="Volunteers")
    assert state["Volunteers"] == ("cohort", None, created.pk)
    assert state["Nurses"] == ("cohort", None, existing.pk)
    assert state["Parents"] == ("", None, None)


def test_cohort_from_another_account_is_refused(polls_world, client_for):
    w = polls_world
    volunteers = _group(w, "Volunteers")
    with account_scope(w.w.other_account):
        foreign = Cohort.objects.create(account=w.w.other_account, name="Foreign")
    before = _state(w)
    data = {
        f"cohort_{volunteers.pk}": "1",
        f"cohort_id_{volunteers.pk}": str(foreign.pk),
        f"cohort_{w.teachers.pk}": "1",
        f"cohort_id_{w.teachers.pk}": "new",
    }
    response = client_for(w.w.alice).post(_step(w, "cohorts"), data)
    assert response.status_code == 400
    assert "no cohort" in response.content.decode()
    assert _state(w) == before


# --- flows and fields -------------------------------------------------------------------------


def test_choosing_flows_makes_polls_and_queues_a_question_sync(polls_world, client_for):
    w = polls_world
    with account_scope(w.w.account):
        extra = Poll.objects.create(
            account=w.w.account,
            connection=w.connection,
            flow_uuid=t.new_uuid(),
            rapidpro_name="Registration",
        )
    client = client_for(w.w.alice)
    body = client.get(_step(w, "flows")).content.decode()
    assert "Registration" in body and "Health check" in body
    response = client.post(_step(w, "flows"), {"flow": [extra.flow_uuid]})
    assert response.status_code == 302 and response["Location"] == _step(w, "fields")
    with account_scope(w.w.account):
        assert set(Poll.objects.filter(is_active=True).values_list("pk", flat=True)) == {extra.pk}
        from closedloop.jobs.models import Job

        job = Job.objects.filter(kind="polls.sync").first()
    assert job.params == {"connection_id": w.connection.pk, "steps": ["flows"]}


def test_unknown_flow_is_refused(polls_world, client_for):
    w = polls_world
    response = client_for(w.w.alice).post(_step(w, "flows"), {"flow": ["not-a-flow"]})
    assert response.status_code == 400
    with account_scope(w.w.account):
        assert Poll.objects.get(pk=w.poll.pk).is_active


def test_visible_fields(polls_world, client_for):
    w = polls_world
    with account_scope(w.w.account):
        for key in ("district", "age"):
            DataField.objects.create(
                account=w.w.account, connection=w.connection, key=key, label=key.title()
            )
    client = client_for(w.w.alice)
    assert client.post(_step(w, "fields"), {"field": ["age"]}).status_code == 302
    with account_scope(w.w.account):
        assert list(DataField.objects.filter(is_visible=True).values_list("key", flat=True)) == [
            "age"
        ]
        assert PollsSettings.objects.get().visible_fields == ["age"]
    assert client.post(_step(w, "fields"), {"field": ["nope"]}).status_code == 400
    with account_scope(w.w.account):
        assert PollsSettings.objects.get().visible_fields == ["age"]


def test_sync_step_shows_the_health_panel(polls_world, client_for):
    body = client_for(polls_world.w.alice).get(_step(polls_world, "sync")).content.decode()
    assert 'data-testid="health-panel"' in body and 'data-testid="sync-now"' in body


def test_unknown_step_is_404(polls_world, client_for):
    assert client_for(polls_world.w.alice).get(_step(polls_world, "nope")).status_code == 404


def test_refresh_reads_flows_groups_and_fields_from_rapidpro(world, client_for, fake_rapidpro):
    from closedloop.polls.tests.sync_helpers import arrange

    arrange(fake_rapidpro)
    client = client_for(world.alice)
    client.post(
        reverse("polls:connection_create"),
        {
            "name": "Fake",
            "host_url": fake_rapidpro.url,
            "token": fake_rapidpro.token,
            "sync_interval_minutes": 30,
        },
    )
    with account_scope(world.account):
        connection = Connection.objects.get()
    response = client.post(reverse("polls:connection_refresh", args=[connection.pk]), follow=True)
    assert response.status_code == 200
    with account_scope(world.account):
        assert Poll.objects.filter(rapidpro_name="Health check").exists()
        assert ContactGroup.objects.filter(name="Teachers").exists()
        assert DataField.objects.filter(key="district").exists()
    body = client.get(
        reverse("polls:connection_step", args=[connection.pk, "panels"])
    ).content.decode()
    assert "North panel" in body
    fake_rapidpro.stop()
    failed = client.post(reverse("polls:connection_refresh", args=[connection.pk]), follow=True)
    assert "could not be read" in failed.content.decode()


# --- settings -------------------------------------------------------------------------------


def test_settings_save(polls_world, client_for):
    w = polls_world
    with account_scope(w.w.account):
        DataField.objects.create(
            account=w.w.account, connection=w.connection, key="district", label="District"
        )
    client = client_for(w.w.alice)
    assert client.get(reverse("polls:settings")).status_code == 200
    response = client.post(
        reverse("polls:settings"),
        {
            "same_day_rule": "sum",
            "inbox_days": "14",
            "contact_fields": ["district"],
            "featured_indicator": "",
        },
    )
    assert response.status_code == 302
    with account_scope(w.w.account):
        row = PollsSettings.objects.get()
    assert (row.same_day_rule, row.inbox_days, row.visible_fields) == ("sum", 14, ["district"])


def test_settings_bad_input_saves_nothing(polls_world, client_for):
    w = polls_world
    client = client_for(w.w.alice)
    response = client.post(reverse("polls:settings"), {"same_day_rule": "max", "inbox_days": "0"})
    assert response.status_code == 200
    assert set(response.context["form"].errors) >= {"same_day_rule", "inbox_days"}
    with account_scope(w.w.account):
        assert not PollsSettings.objects.exists() or PollsSettings.objects.get().inbox_days == 30


# --- poll editing ---------------------------------------------------------------------------


def test_poll_edit_renames_retypes_and_hides(polls_world, client_for):
    w = polls_world
    client = client_for(w.w.alice)
    assert client.get(reverse("polls:poll_edit", args=[w.poll.pk])).status_code == 200
    data = {
        "name": "Family health",
        f"q{w.q_children.pk}_name": "Number of children",
        f"q{w.q_children.pk}_type": "numeric",
        f"q{w.q_color.pk}_name": "",
        f"q{w.q_color.pk}_type": "open",
        f"q{w.q_comment.pk}_name": "",
        f"q{w.q_comment.pk}_type": "open",
        f"q{w.q_comment.pk}_hidden": "1",
    }
    assert client.post(reverse("polls:poll_edit", args=[w.poll.pk]), data).status_code == 302
    with account_scope(w.w.account):
        poll = Poll.objects.get(pk=w.poll.pk)
        qs = {q.result_key: q for q in Question.objects.filter(poll=poll)}
    assert poll.display_name == "Family health"
    assert qs["children"].name == "Number of children" and not qs["children"].type_overridden
    assert qs["color"].type == QuestionType.OPEN and qs["color"].type_overridden
    assert qs["comment"].is_hidden and not qs["comment"].type_overridden
    # blank name: follow RapidPro again
    data["name"] = ""
    client.post(reverse("polls:poll_edit", args=[w.poll.pk]), data)
    with account_scope(w.w.account):
        assert Poll.objects.get(pk=w.poll.pk).display_name == "Health check"


def test_poll_edit_bad_type_saves_nothing(polls_world, client_for):
    w = polls_world
    data = {"name": "Renamed", f"q{w.q_color.pk}_type": "essay"}
    response = client_for(w.w.alice).post(reverse("polls:poll_edit", args=[w.poll.pk]), data)
    assert response.status_code == 400
    with account_scope(w.w.account):
        assert Poll.objects.get(pk=w.poll.pk).name == ""
        assert Question.objects.get(pk=w.q_color.pk).type == QuestionType.CATEGORICAL


def test_other_accounts_poll_is_404_for_edit(polls_world, client_for):
    assert (
        client_for(polls_world.w.alice)
        .get(reverse("polls:poll_edit", args=[polls_world.other_poll.pk]))
        .status_code
        == 404
    )


def test_group_roles_change_is_all_or_nothing_in_the_service(polls_world):
    from closedloop.polls import services

    w = polls_world
    with account_scope(w.w.account):
        before = _state(w)
        with pytest.raises(services.SetupError) as info:
            services.set_group_roles(
                connection=w.connection,
                roles={w.parents.pk: ("", None), w.north.pk: ("panel", 10**9)},
                user=w.w.alice,
            )
        assert info.value.field == f"group_{w.north.pk}"
        with pytest.raises(services.SetupError):
            services.set_group_roles(
                connection=w.connection, roles={w.other_connection.pk * 1000: ("", None)}, user=None
            )
    assert _state(w) == before
    assert GroupRole.PANEL == "panel"
