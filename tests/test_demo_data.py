"""The demo data: deterministic, complete, geographically consistent, isolated, idempotent."""

from __future__ import annotations

import hashlib
from collections import Counter
from io import StringIO

import pytest
from django.core.management import call_command
from shapely.geometry import Point, shape

from closedloop.accounts.models import Account, Membership, Role, User
from closedloop.core.demo import (
    DEMO_PASSWORD,
    DEMO_SLUG,
    PARTNER_SLUG,
    SIZES,
    load_demo,
    plan_country,
)
from closedloop.core.tenancy import account_scope, scopes_disabled
from closedloop.jobs.models import Job, JobStatus
from closedloop.people.models import Cohort, Identifier, Person
from closedloop.polls import demo as polls_demo
from closedloop.polls.models import (
    Answer,
    Connection,
    ContactGroup,
    GroupRole,
    Indicator,
    Poll,
    PollRun,
    Question,
    Response,
)
from closedloop.registry.models import OrgUnit
from closedloop.registry.paths import child_path
from closedloop.registry.selectors import visible_units


@pytest.fixture
def demo(db):
    load_demo(size="small")
    return Account.objects.get(slug=DEMO_SLUG)


def db_digest(account: Account) -> str:
    """Everything that must not change between two builds (ids may)."""
    h = hashlib.sha256()
    with account_scope(account):
        for row in OrgUnit.objects.order_by("code").values_list(
            "name", "code", "parent__code", "type__name", "latitude", "longitude", "geometry"
        ):
            h.update(repr(row).encode())
        for row in Person.objects.order_by("name", "org_unit__code", "fields").values_list(
            "name", "org_unit__code", "language", "fields"
        ):
            h.update(repr(row).encode())
    return h.hexdigest()


def test_the_plan_is_the_same_for_the_same_seed_and_differs_for_another():
    first = plan_country(7, SIZES["small"])
    assert first.digest() == plan_country(7, SIZES["small"]).digest()
    assert first.digest() != plan_country(8, SIZES["small"]).digest()


def test_it_builds_the_same_database_content_when_rebuilt(demo):
    before = db_digest(demo)
    load_demo(size="small", reset=True)
    rebuilt = Account.objects.get(slug=DEMO_SLUG)
    assert rebuilt.pk != demo.pk
    assert db_digest(rebuilt) == before


def test_it_has_the_expected_units_and_people_per_type(demo):
    with account_scope(demo):
        # the people of the registry; the demo's RapidPro contacts are checked below
        registry_people = Person.objects.filter(rapidpro_contact__isnull=True)
        types = Counter(OrgUnit.objects.values_list("type__name", flat=True))
        assert types["Country"] == 1
        assert types["Region"] == 2
        assert types["District"] == 10
        assert types["School"] + types["Health facility"] == 287
        assert types["School"] > types["Health facility"] > 0
        assert registry_people.count() == 2000
        assert Person.objects.filter(org_unit__isnull=True).count() == 0
        assert set(registry_people.values_list("language", flat=True)) == {"en", "fr", "ar"}
        phones = Identifier.objects.filter(
            kind=Identifier.Kind.PHONE, person__rapidpro_contact__isnull=True
        )
        assert phones.count() == 2000
        assert all(v.startswith("tel:+2507") for v in phones.values_list("value", flat=True))
        assert Identifier.objects.filter(kind=Identifier.Kind.EMAIL).count() == 1000
        cohorts = {
            c.name: c.people.filter(rapidpro_contact__isnull=True).count()
            for c in Cohort.objects.all()
        }
        assert cohorts["Students"] == 1000
        assert cohorts["Teachers"] + cohorts["Health workers"] == 1000
        grades = sum(n for name, n in cohorts.items() if name.startswith("Grade"))
        assert grades == cohorts["Students"]


def test_paths_and_depths_follow_the_parents(demo):
    with account_scope(demo):
        units = {u.pk: u for u in OrgUnit.objects.all()}
    for unit in units.values():
        parent = units.get(unit.parent_id) if unit.parent_id else None
        assert unit.path == child_path(parent.path if parent else "", unit.pk)
        assert unit.depth == (parent.depth + 1 if parent else 1)


def test_polygons_contain_their_childrens_points_and_polygons(demo):
    with account_scope(demo):
        units = {u.pk: u for u in OrgUnit.objects.select_related("type")}
    checked = 0
    for unit in units.values():
        if unit.parent_id is None:
            continue
        area = shape(units[unit.parent_id].geometry)
        if unit.geometry:
            assert area.buffer(1e-9).contains(shape(unit.geometry)), unit.name
            assert unit.bbox_min_lon is not None and unit.simplified_geometry
        else:
            assert area.contains(Point(unit.longitude, unit.latitude)), unit.name
        checked += 1
    assert checked == 299


def test_the_supervisor_is_scoped_to_one_region(demo):
    with account_scope(demo):
        membership = Membership.objects.get(
            account=demo, user__email="supervisor@demo.closedloop.org"
        )
        assert membership.role == Role.SUPERVISOR
        region = membership.scope.get()
        assert region.type.name == "Region"
        visible = visible_units(membership)
        assert 0 < visible.count() < OrgUnit.objects.count()
        assert not visible.filter(parent__isnull=True).exists()


def test_every_demo_user_can_log_in_with_the_documented_password(demo, client):
    for email in ("admin", "supervisor", "instructor", "viewer", "ngo"):
        assert client.login(username=f"{email}@demo.closedloop.org", password=DEMO_PASSWORD)
        client.logout()


def test_the_partner_account_is_isolated(demo):
    partner = Account.objects.get(slug=PARTNER_SLUG)
    with account_scope(partner):
        units = OrgUnit.objects.all()
        assert units.count() == 15
        assert not units.filter(name__in=_names(demo)).exists()
        assert Person.objects.count() == 60
        assert not Connection.objects.exists()  # the polls demo is in the main account only
    ngo = User.objects.get(email="ngo@demo.closedloop.org")
    assert list(ngo.memberships.values_list("account__slug", flat=True)) == [PARTNER_SLUG]


def _names(account: Account) -> list[str]:
    with account_scope(account):
        return list(OrgUnit.objects.values_list("name", flat=True))


def test_running_it_twice_changes_nothing(demo):
    with scopes_disabled():
        before = (OrgUnit.objects.count(), Person.objects.count(), User.objects.count())
    out = StringIO()
    call_command("demo_data", size="small", stdout=out)
    assert "already loaded" in out.getvalue()
    with scopes_disabled():
        assert (OrgUnit.objects.count(), Person.objects.count(), User.objects.count()) == before
    assert Account.objects.filter(slug__in=[DEMO_SLUG, PARTNER_SLUG]).count() == 2


def test_the_command_prints_the_logins(db):
    out = StringIO()
    call_command("demo_data", size="small", stdout=out)
    text = out.getvalue()
    assert "demo-ministry: 300 org units, 2000 people" in text
    assert DEMO_PASSWORD in text
    assert "supervisor@demo.closedloop.org" in text


def test_the_jobs_page_has_a_finished_job(demo):
    with account_scope(demo):
        job = Job.objects.get()
    assert job.status == JobStatus.SUCCEEDED
    assert job.percent == 100


def test_new_units_get_fresh_ids_after_the_bulk_insert(demo):
    from closedloop.registry.services import orgunit_create

    with account_scope(demo):
        root = OrgUnit.objects.get(parent__isnull=True)
        unit = orgunit_create(account=demo, actor=None, name="Brand new district", parent=root)
        assert unit.path.startswith(root.path)
    with scopes_disabled():
        assert OrgUnit.objects.filter(pk=unit.pk).count() == 1


def test_an_unknown_size_is_refused(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("demo_data", size="huge")


def test_the_demo_command_sets_up_loads_once_and_serves(db, monkeypatch):
    from closedloop.core.management.commands import demo as demo_command

    calls: list[tuple[str, dict]] = []
    real_call_command = demo_command.call_command

    def record(name, *args, **kwargs):
        calls.append((name, kwargs))
        if name == "demo_data":
            return real_call_command(name, *args, **{**kwargs, "size": "small"})
        return None

    monkeypatch.setattr(demo_command, "call_command", record)
    out = StringIO()
    call_command("demo", port=8123, stdout=out)
    call_command("demo", port=8123, stdout=out)
    names = [name for name, _kwargs in calls]
    assert names.count("demo_data") == 1
    assert names[-1] in {"serve", "runserver"} and names.count(names[-1]) == 2
    if names[-1] == "serve":
        assert calls[-1][1]["fake_rapidpro"] == 8001
    assert "http://127.0.0.1:8123/" in out.getvalue()
    assert "Demo data already loaded." in out.getvalue()
    assert Account.objects.filter(slug=DEMO_SLUG).count() == 1


# --- the polls demo: a RapidPro workspace synced from the fake RapidPro -------------------


def test_the_polls_demo_has_a_synced_connection_with_panels_polls_and_answers(demo, settings):
    with account_scope(demo):
        connection = Connection.objects.get()
        assert connection.name == polls_demo.CONNECTION_NAME
        assert connection.host_url == f"http://127.0.0.1:{settings.DEMO_RAPIDPRO_PORT}"
        assert connection.workspace_name and connection.last_success_at
        assert connection.consecutive_failures == 0
        districts = set(
            OrgUnit.objects.filter(type__name="District").values_list("name", flat=True)
        )
        panels = ContactGroup.objects.filter(role=GroupRole.PANEL).select_related("org_unit")
        assert {p.name for p in panels} == districts  # one panel per district, linked to it
        assert all(p.org_unit.name == p.name for p in panels)
        cohorts = ContactGroup.objects.filter(role=GroupRole.COHORT)
        assert cohorts.count() == 3 and all(c.cohort_id for c in cohorts)
        assert Poll.objects.filter(is_active=True).count() == polls_demo.DEMO_RAPIDPRO_POLLS
        assert Question.objects.count() > 3 * polls_demo.DEMO_RAPIDPRO_POLLS - 1
        assert PollRun.objects.count() >= 8 * polls_demo.DEMO_RAPIDPRO_POLLS
        assert Response.objects.count() > 5000
        assert Answer.objects.filter(category__gt="").count() > 10000
        assert connection.contacts.count() == polls_demo.DEMO_RAPIDPRO_CONTACTS
        assert Person.objects.filter(rapidpro_contact__isnull=False).count() == 600
        assert Indicator.objects.count() == 1


def test_the_served_double_matches_what_the_demo_synced(demo):
    served = polls_demo.served_demo_double()
    with account_scope(demo):
        assert {c["uuid"] for c in served.state.contacts} == set(
            Connection.objects.get().contacts.values_list("uuid", flat=True)
        )
        assert {f["uuid"] for f in served.state.flows} == set(
            Poll.objects.values_list("flow_uuid", flat=True)
        )
        assert len(served.state.runs) == Response.objects.count()


def test_fake_rapidpro_serves_the_demo_workspace(demo):
    out = StringIO()
    call_command("fake_rapidpro", demo=True, port=0, serve_seconds=0.05, stdout=out)
    assert "Token: " + polls_demo.DEMO_RAPIDPRO_TOKEN in out.getvalue()


def test_fake_rapidpro_demo_without_the_demo_is_refused(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="demo-data"):
        call_command("fake_rapidpro", demo=True, port=0, serve_seconds=0.05)


def test_the_polls_demo_is_purged_with_the_demo(demo):
    load_demo(size="small", reset=True)
    with scopes_disabled():
        assert Connection.objects.count() == 1
        assert not Response.objects.exclude(account__slug=DEMO_SLUG).exists()
    from closedloop.core.demo import delete_demo

    delete_demo()
    with scopes_disabled():
        for model in (Connection, Poll, Response, Answer, ContactGroup, Indicator):
            assert not model.objects.exists(), model


def test_serve_adds_the_fake_rapidpro_child_on_request():
    from closedloop.core.management.commands.serve import child_commands

    names = [c.name for c in child_commands("127.0.0.1", 8000, False)]
    assert "rapidpro" not in names
    children = child_commands("127.0.0.1", 8000, False, fake_rapidpro=8001)
    argv = children[-1].argv
    assert children[-1].name == "rapidpro"
    assert argv[-4:] == ["fake-rapidpro", "--demo", "--port", "8001"]
