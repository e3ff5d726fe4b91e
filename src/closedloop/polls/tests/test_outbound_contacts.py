"""Contacts created, edited and deleted in closedloop are pushed to RapidPro (the double),
keeping every group membership, and failures stay visible on the contact."""

from __future__ import annotations

import pytest

from closedloop.core.tenancy import account_scope
from closedloop.jobs.models import Job, JobStatus
from closedloop.people.models import Identifier, Person
from closedloop.polls import outbound_contacts as oc
from closedloop.polls.models import Contact, ContactStatus
from closedloop.polls.outbound import OutboundError
from closedloop.polls.tests.outbound_helpers import posts, run, wire


@pytest.fixture
def rp(polls_world, fake_rapidpro):
    extra = wire(polls_world, fake_rapidpro)
    polls_world.untracked = extra["untracked"]
    return polls_world


def _remote(server, uuid):
    return next(c for c in server.state.contacts if c["uuid"] == uuid)


def _job_for(contact):
    return Job.objects.filter(kind="polls.push_contact", params__contact_id=contact.pk).latest("pk")


def test_a_new_contact_is_saved_locally_then_created_in_rapidpro(rp, fake_rapidpro):
    with account_scope(rp.w.account):
        contact = oc.contact_create(
            actor=rp.w.alice,
            panel=rp.northvale,
            name="Fay",
            phones=["+250 788 000 010"],
            cohorts=[rp.teachers],
            language="fra",
        )
        assert contact.uuid.startswith("new-") and contact.push_pending
        person = contact.person
        assert person.org_unit_id == rp.w.district_n1.pk
        assert [c.name for c in person.cohorts.all()] == ["Teachers"]
        assert person.identifiers.get(kind=Identifier.Kind.PHONE).value == "tel:+250788000010"
        done = run(_job_for(contact))
        assert done.status == JobStatus.SUCCEEDED, done.error
        contact.refresh_from_db()
    remote = _remote(fake_rapidpro, contact.uuid)
    assert remote["name"] == "Fay" and remote["language"] == "fra"
    assert remote["urns"] == ["tel:+250788000010"]
    assert {g["uuid"] for g in remote["groups"]} == {rp.northvale.uuid, rp.teachers.uuid}
    assert not contact.push_pending and contact.push_error == ""
    with account_scope(rp.w.account):
        assert Identifier.objects.filter(system="rapidpro", value=contact.uuid).exists()


def test_an_edit_is_pushed_with_every_group_kept(rp, fake_rapidpro):
    with account_scope(rp.w.account):
        contact = Contact.objects.get(pk=rp.ana.pk)
        oc.contact_update(
            actor=rp.w.alice,
            contact=contact,
            panel=rp.northvale,
            name="Ana Maria",
            phones=["+250788000011"],
            cohorts=[rp.parents],
            language="eng",
        )
        done = run(_job_for(contact))
        assert done.status == JobStatus.SUCCEEDED, done.error
        contact.refresh_from_db()
        assert contact.person.name == "Ana Maria"
        assert contact.org_unit_id == rp.w.district_n1.pk
    (body,) = posts(fake_rapidpro, "contacts")
    # panel and cohort replaced; the untracked "Volunteers" group kept
    assert set(body["groups"]) == {rp.northvale.uuid, rp.parents.uuid, rp.untracked["uuid"]}
    remote = _remote(fake_rapidpro, rp.ana.uuid)
    assert remote["name"] == "Ana Maria" and remote["urns"] == ["tel:+250788000011"]
    assert not contact.push_pending


def test_a_refused_push_keeps_the_error_on_the_contact(rp, fake_rapidpro):
    with account_scope(rp.w.account):
        contact = Contact.objects.get(pk=rp.ben.pk)
        # RapidPro refuses: the number already belongs to Cara there
        oc.contact_update(
            actor=rp.w.alice,
            contact=contact,
            panel=rp.northvale,
            name="Ben",
            phones=["+250788000099"],
            cohorts=[],
        )
        fake_rapidpro.add_contact("Someone", ["tel:+250788000099"])
        done = run(_job_for(contact))
        contact.refresh_from_db()
    assert done.status == JobStatus.FAILED
    assert contact.push_pending
    assert "URN belongs to another contact" in contact.push_error


def test_delete_hides_the_contact_and_deletes_it_in_rapidpro(rp, fake_rapidpro):
    with account_scope(rp.w.account):
        contact = Contact.objects.get(pk=rp.dan.pk)
        job = oc.contact_delete(actor=rp.w.alice, contact=contact)
        contact.refresh_from_db()
        assert not contact.is_active and contact.status == ContactStatus.DELETED
        assert not Person.objects.get(pk=contact.person_id).is_active
        assert run(job).status == JobStatus.SUCCEEDED
        contact.refresh_from_db()
        assert not contact.push_pending
        assert contact.responses.count() == 1  # history kept
    assert rp.dan.uuid not in {c["uuid"] for c in fake_rapidpro.state.contacts}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"phones": ["0788"]}, "phones"),
        ({"phones": []}, "phones"),
        ({"language": "english"}, "language"),
        ({"name": "  "}, "name"),
        ({"phones": ["+250788000002"]}, "phones"),  # Ben's number
    ],
)
def test_bad_input_is_refused_with_the_field_and_nothing_saved(rp, changes, field):
    values = {"name": "Gus", "phones": ["+250788000012"], "language": "eng", **changes}
    with account_scope(rp.w.account):
        before = (Contact.objects.count(), Person.objects.count(), Job.objects.count())
        with pytest.raises(OutboundError) as err:
            oc.contact_create(actor=rp.w.alice, panel=rp.north, cohorts=[], **values)
        assert err.value.field == field
        assert (Contact.objects.count(), Person.objects.count(), Job.objects.count()) == before


def test_a_cohort_group_is_not_accepted_as_panel(rp):
    with account_scope(rp.w.account):
        with pytest.raises(OutboundError) as err:
            oc.contact_create(
                actor=rp.w.alice, panel=rp.teachers, name="Hal", phones=["+250788000013"]
            )
        assert err.value.field == "panel"
