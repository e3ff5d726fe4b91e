"""Contact sync: RapidPro contacts of panels and cohorts → Contact + Person, in bulk."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext

from closedloop.core.tenancy import account_scope
from closedloop.people.models import CustomField, Identifier, Person
from closedloop.polls import sync
from closedloop.polls.models import Contact, ContactGroup, ContactStatus, GroupRole
from closedloop.polls.tests.sync_helpers import arrange, choose, connect, requests_to

pytestmark = pytest.mark.django_db


def _touch(fake: Any, contact: dict[str, Any], **changes: Any) -> None:
    """Change a contact in the double the way RapidPro does (modified_on moves)."""
    contact.update(changes)
    contact["modified_on"] = fake.state.now()
    fake.state.touch()


@pytest.fixture
def ws(world: Any, fake_rapidpro: Any) -> Any:
    """The double with seven contacts, a connection with panels and cohorts chosen."""
    fake = fake_rapidpro
    r = arrange(fake)
    people = {
        "ana": fake.add_contact(
            "Ana",
            ["tel:+250788000001"],
            groups=[r.north["uuid"], r.teachers["uuid"]],
            fields={"district": "Gasabo", "age": 34},
        ),
        "ben": fake.add_contact(
            "Ben",
            ["tel:+250788000002", "whatsapp:250788000002", "twitter:benny"],
            groups=[r.north["uuid"], r.northvale["uuid"], r.teachers["uuid"]],
            language="fra",
        ),
        "cara": fake.add_contact(
            "Cara",
            ["tel:+250788000003"],
            groups=[r.south["uuid"], r.parents["uuid"]],
            status="blocked",
        ),
        "dan": fake.add_contact("Dan", [], groups=[r.south["uuid"]]),
        "eve": fake.add_contact("Eve", ["tel:+250788000005"], groups=[r.teachers["uuid"]]),
        "fay": fake.add_contact(
            "Fay", ["tel:+250788000006"], groups=[r.north["uuid"]], status="stopped"
        ),
        "zed": fake.add_contact("Zed", ["tel:+250788000009"], groups=[r.customers["uuid"]]),
    }
    conn = connect(world, fake)
    with account_scope(world.account):
        sync.sync_groups(conn)
        sync.sync_fields(conn)
    choose(world, conn, r)

    class WS:
        pass

    ws = WS()
    ws.fake, ws.r, ws.people, ws.conn, ws.world = fake, r, people, conn, world
    return ws


def _contacts(ws: Any) -> dict[str, Contact]:
    return {
        c.uuid: c
        for c in Contact.objects.filter(connection=ws.conn).select_related("person", "panel")
    }


def _by_name(ws: Any) -> dict[str, Contact]:
    return {c.name.lower() or c.uuid: c for c in _contacts(ws).values()}


def test_members_of_panels_and_cohorts_become_contacts_and_people(ws: Any) -> None:
    world = ws.world
    with account_scope(world.account):
        counts = sync.sync_contacts(ws.conn)
        c = _by_name(ws)
        teachers = ContactGroup.objects.get(uuid=ws.r.teachers["uuid"]).cohort
        parents = ContactGroup.objects.get(uuid=ws.r.parents["uuid"]).cohort
        cohorts = {name: set(c[name].person.cohorts.values_list("name", flat=True)) for name in c}
        idents = {
            name: set(
                Identifier.objects.filter(person=c[name].person).values_list(
                    "kind", "system", "value"
                )
            )
            for name in c
        }
        custom = {f.key: f.type for f in CustomField.objects.all()}
    assert set(c) == {"ana", "ben", "cara", "dan", "eve", "fay"}  # zed: not in a tracked group
    assert counts["contacts_created"] == 6
    assert counts["contacts"] == 4  # cara blocked and fay stopped are inactive
    assert counts["contacts_unplaced"] == 1  # eve: a cohort but no panel
    ana = c["ana"]
    assert ana.panel.uuid == ws.r.north["uuid"] and ana.org_unit_id == world.region_north.pk
    assert ana.person.org_unit_id == world.region_north.pk
    assert ana.person.name == "Ana" and ana.language == "eng" and ana.person.language == "eng"
    assert ana.fields == {"district": "Gasabo", "age": 34}
    assert ana.person.fields == {"district": "Gasabo", "age": 34}
    assert ana.is_active and ana.person.is_active and ana.status == ContactStatus.ACTIVE
    assert ana.urns == ["tel:+250788000001"]
    assert ana.modified_on is not None
    # several panels: the deepest org unit wins
    assert c["ben"].org_unit_id == world.district_n1.pk
    assert c["ben"].panel.uuid == ws.r.northvale["uuid"]
    assert cohorts["ana"] == {"Teachers"} and cohorts["ben"] == {"Teachers"}
    assert cohorts["cara"] == {"Parents"} and cohorts["dan"] == set()
    assert teachers is not None and parents is not None
    # several URNs: phone, and external ids per scheme, plus the RapidPro uuid
    assert idents["ben"] == {
        ("phone", "", "tel:+250788000002"),
        ("external", "rapidpro-whatsapp", "250788000002"),
        ("external", "rapidpro-twitter", "benny"),
        ("external", "rapidpro", ws.people["ben"]["uuid"]),
    }
    # no URN at all: kept (TracPro dropped these)
    assert idents["dan"] == {("external", "rapidpro", ws.people["dan"]["uuid"])}
    assert c["dan"].is_active and c["dan"].org_unit_id == world.region_south.pk
    # blocked / stopped: kept, inactive, status stored
    assert c["cara"].status == ContactStatus.BLOCKED and not c["cara"].is_active
    assert not c["cara"].person.is_active
    assert c["fay"].status == ContactStatus.STOPPED and not c["fay"].is_active
    # unplaced: stored without org unit
    assert c["eve"].panel is None and c["eve"].org_unit is None and c["eve"].is_active
    # people custom fields for the RapidPro fields our contacts carry
    assert custom == {"district": "text", "age": "number"}


def test_contact_sync_queries_do_not_grow_with_the_number_of_contacts(
    world: Any, fake_rapidpro: Any
) -> None:
    fake = fake_rapidpro
    small, big = fake.add_group("Small"), fake.add_group("Big")
    teachers = fake.add_group("Teachers")
    for i in range(3):
        fake.add_contact(
            f"S{i}",
            [f"tel:+25078810{i:04d}"],
            groups=[small["uuid"], teachers["uuid"]],
            fields={"district": "A"},
        )
    for i in range(120):
        fake.add_contact(
            f"B{i}",
            [f"tel:+25078820{i:04d}", f"whatsapp:25078820{i:04d}"],
            groups=[big["uuid"], teachers["uuid"]],
            fields={"district": "B"},
        )
    fake.add_field("district", "District", "text")
    from closedloop.people.models import Cohort

    counts = []
    for name, group in (("small", small), ("big", big)):
        conn = connect(world, fake, name=name)
        with account_scope(world.account):
            sync.sync_groups(conn)
            sync.sync_fields(conn)
            rows = {g.uuid: g for g in ContactGroup.objects.filter(connection=conn)}
            panel = rows[group["uuid"]]
            panel.role, panel.org_unit = GroupRole.PANEL, world.region_north
            panel.save()
            # a cohort group tracked on the small connection only (its other members are
            # outside both panels and stay out)
            if name == "small":
                cohort_group = rows[teachers["uuid"]]
                cohort_group.role = GroupRole.COHORT
                cohort_group.cohort = Cohort.objects.create(account=world.account, name="T")
                cohort_group.save()
            with CaptureQueriesContext(db) as captured:
                sync.sync_contacts(conn, full=True)
            counts.append(len(captured))
    with account_scope(world.account):
        assert Contact.objects.filter(connection__name="big").count() == 120
        assert Identifier.objects.filter(kind="external", system="rapidpro-whatsapp").count() == 120
    assert counts[1] <= counts[0], counts


def test_contact_sync_stays_within_a_fixed_query_budget(
    ws: Any, django_assert_max_num_queries: Any
) -> None:
    with account_scope(ws.world.account), django_assert_max_num_queries(30):
        sync.sync_contacts(ws.conn)
    with account_scope(ws.world.account), django_assert_max_num_queries(20):
        sync.sync_contacts(ws.conn)


def test_incremental_sync_asks_only_for_changes_since_the_watermark(ws: Any) -> None:
    fake = ws.fake
    with account_scope(ws.world.account):
        sync.sync_contacts(ws.conn)
        ws.conn.refresh_from_db()
        watermark = ws.conn.contacts_after
        # the newest modified_on of everything listed (zed is listed, then left out)
        assert watermark.isoformat() == max(c["modified_on"] for c in fake.state.contacts)
        fake.state.requests.clear()
        _touch(fake, ws.people["ana"], name="Ana Maria")
        counts = sync.sync_contacts(ws.conn)
        ana = Contact.objects.select_related("person").get(uuid=ws.people["ana"]["uuid"])
    listings = requests_to(fake, "contacts")
    assert {"after", "reverse"} <= set(listings[0]) or "after" in listings[0]
    assert listings[0]["after"].startswith(watermark.strftime("%Y-%m-%dT%H:%M:%S"))
    assert all("group" not in p for p in listings)
    assert counts["contacts_read"] == 2  # the changed one + the inclusive watermark one
    assert counts["contacts_updated"] == 1 and counts["contacts_created"] == 0
    assert ana.name == "Ana Maria" and ana.person.name == "Ana Maria"


def test_full_sync_ignores_the_watermark(ws: Any) -> None:
    with account_scope(ws.world.account):
        sync.sync_contacts(ws.conn)
        ws.fake.state.requests.clear()
        counts = sync.sync_contacts(ws.conn, full=True)
    listings = requests_to(ws.fake, "contacts")
    assert all("after" not in p for p in listings if "deleted" not in p)
    assert counts["contacts_read"] >= 6 and counts["contacts_updated"] == 0


def test_one_listing_per_group_when_that_takes_fewer_requests(
    world: Any, fake_rapidpro: Any
) -> None:
    fake = fake_rapidpro
    panel = fake.add_group("Panel")
    other = fake.add_group("Everyone else")
    fake.add_contact("In", ["tel:+250788000001"], groups=[panel["uuid"]])
    for i in range(300):
        fake.add_contact(f"Out {i}", [f"tel:+25078830{i:04d}"], groups=[other["uuid"]])
    conn = connect(world, fake)
    with account_scope(world.account):
        sync.sync_groups(conn)
        ContactGroup.objects.filter(uuid=panel["uuid"]).update(
            role=GroupRole.PANEL, org_unit=world.region_north
        )
        fake.state.requests.clear()
        counts = sync.sync_contacts(conn)
    assert requests_to(fake, "contacts") == [{"group": panel["uuid"]}]
    assert counts["contacts_created"] == 1


def test_deleted_blocked_and_departed_contacts_become_inactive(ws: Any) -> None:
    fake, r = ws.fake, ws.r
    with account_scope(ws.world.account):
        sync.sync_contacts(ws.conn)
        fake.delete_contact(ws.people["ana"]["uuid"])
        _touch(fake, ws.people["ben"], groups=[{"uuid": r.customers["uuid"], "name": "Customers"}])
        _touch(fake, ws.people["dan"], status="blocked")
        _touch(fake, ws.people["cara"], status="active")
        counts = sync.sync_contacts(ws.conn)
        c = _by_name(ws)
        ben_cohorts = list(c["ben"].person.cohorts.all())
    assert counts["contacts_deleted"] == 1
    ana = c["ana"]
    assert ana.status == ContactStatus.DELETED and not ana.is_active and not ana.person.is_active
    # ben left every tracked group: inactive, no panel, no cohort
    assert not c["ben"].is_active and c["ben"].panel is None and ben_cohorts == []
    assert c["ben"].group_uuids == [r.customers["uuid"]]
    assert c["dan"].status == ContactStatus.BLOCKED and not c["dan"].is_active
    assert c["cara"].is_active and c["cara"].person.is_active  # unblocked


def test_unseen_contacts_of_a_full_group_listing_leave_those_groups(
    world: Any, fake_rapidpro: Any
) -> None:
    fake = fake_rapidpro
    panel = fake.add_group("Panel")
    filler = fake.add_group("Others")
    for i in range(300):
        fake.add_contact(f"Out {i}", [f"tel:+25078830{i:04d}"], groups=[filler["uuid"]])
    one = fake.add_contact("One", ["tel:+250788000001"], groups=[panel["uuid"]])
    conn = connect(world, fake)
    with account_scope(world.account):
        sync.sync_groups(conn)
        ContactGroup.objects.filter(uuid=panel["uuid"]).update(
            role=GroupRole.PANEL, org_unit=world.region_north
        )
        sync.sync_contacts(conn)
        # removed from the group without RapidPro bumping anything we read incrementally
        one["groups"] = []
        fake.state.touch()
        sync.sync_contacts(conn, full=True)
        contact = Contact.objects.get(uuid=one["uuid"])
    assert not contact.is_active and contact.group_uuids == [] and contact.org_unit_id is None


def test_role_changes_replace_contacts_without_rapidpro_changes(ws: Any) -> None:
    world = ws.world
    with account_scope(world.account):
        sync.sync_contacts(ws.conn)
        ContactGroup.objects.filter(uuid=ws.r.north["uuid"]).update(org_unit=world.district_s1)
        ContactGroup.objects.filter(uuid=ws.r.teachers["uuid"]).update(role="", cohort=None)
        ws.fake.state.requests.clear()
        sync.sync_contacts(ws.conn)
        c = _by_name(ws)
        eve_cohorts = list(c["eve"].person.cohorts.values_list("name", flat=True))
    assert c["ana"].org_unit_id == world.district_s1.pk
    assert c["ana"].person.org_unit_id == world.district_s1.pk
    assert not c["eve"].is_active  # was only in Teachers, no longer tracked
    # the people cohort is no longer fed by RapidPro; its memberships are left as they were
    assert eve_cohorts == ["Teachers"]
    # ben: North (now a district) and Northvale at the same depth → the first group found
    assert c["ben"].org_unit_id == world.district_s1.pk


def test_a_newly_tracked_group_is_read_in_full_on_an_incremental_sync(ws: Any) -> None:
    with account_scope(ws.world.account):
        sync.sync_contacts(ws.conn)
        ContactGroup.objects.filter(uuid=ws.r.customers["uuid"]).update(
            role=GroupRole.PANEL, org_unit=ws.world.district_s1
        )
        ws.fake.state.requests.clear()
        sync.sync_contacts(ws.conn)
        zed = Contact.objects.get(uuid=ws.people["zed"]["uuid"])
    listings = requests_to(ws.fake, "contacts")
    assert any("after" in p for p in listings)
    assert zed.org_unit_id == ws.world.district_s1.pk and zed.is_active


def test_an_existing_person_with_the_same_phone_is_reused(ws: Any) -> None:
    world = ws.world
    with account_scope(world.account):
        known = Person.objects.create(
            account=world.account, name="Ana (HR)", fields={"staff_no": "77", "district": "Old"}
        )
        Identifier.objects.create(
            account=world.account, person=known, kind="phone", value="tel:+250788000001"
        )
        sync.sync_contacts(ws.conn)
        ana = Contact.objects.select_related("person").get(uuid=ws.people["ana"]["uuid"])
        # RapidPro clears a field: the key goes, the person's own keys stay
        ws.people["ana"]["fields"]["district"] = None
        _touch(ws.fake, ws.people["ana"])
        sync.sync_contacts(ws.conn)
        known.refresh_from_db()
        phones = Identifier.objects.filter(value="tel:+250788000001").count()
    assert ana.person_id == known.pk
    assert known.fields == {"staff_no": "77", "age": 34}
    assert phones == 1


def test_urn_changes_update_the_identifiers(ws: Any) -> None:
    with account_scope(ws.world.account):
        sync.sync_contacts(ws.conn)
        _touch(ws.fake, ws.people["ben"], urns=["tel:+250788000222"])
        sync.sync_contacts(ws.conn)
        ben = Contact.objects.get(uuid=ws.people["ben"]["uuid"])
        values = set(
            Identifier.objects.filter(person_id=ben.person_id).values_list("value", flat=True)
        )
    assert values == {"tel:+250788000222", ws.people["ben"]["uuid"]}


def test_contact_sync_never_touches_another_account(ws: Any) -> None:
    world = ws.world
    with account_scope(world.other_account):
        other = Person.objects.create(account=world.other_account, name="Ana elsewhere")
        Identifier.objects.create(
            account=world.other_account, person=other, kind="phone", value="tel:+250788000001"
        )
    with account_scope(world.account):
        sync.sync_contacts(ws.conn)
        ana = Contact.objects.get(uuid=ws.people["ana"]["uuid"])
        assert ana.person_id != other.pk
        assert ana.person.account_id == world.account.pk
    with account_scope(world.other_account):
        assert Contact.objects.count() == 0
        assert list(Person.objects.values_list("name", flat=True)) == ["Ana elsewhere"]
        assert CustomField.objects.count() == 0


def test_contacts_missing_optional_fields_are_read_with_defaults(ws: Any) -> None:
    ana = ws.people["ana"]
    for key in ("status", "language", "fields", "last_seen_on", "name"):
        ana.pop(key)
    ana["a_field_from_the_future"] = {"x": 1}
    ws.fake.state.touch()
    with account_scope(ws.world.account):
        sync.sync_contacts(ws.conn)
        row = Contact.objects.select_related("person").get(uuid=ana["uuid"])
    assert row.status == ContactStatus.ACTIVE and row.is_active
    assert row.language == "" and row.fields == {} and row.name == ""
    assert row.person.name == "+250788000001"  # no name: the first URN stands in
