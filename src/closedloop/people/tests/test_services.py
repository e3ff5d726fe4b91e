from __future__ import annotations

import pytest

from closedloop.core.models import AuditEntry
from closedloop.people.models import CustomField, Identifier, Person
from closedloop.people.services import (
    PeopleError,
    cohort_create,
    custom_field_create,
    normalise_phone,
    person_create,
    person_delete,
    person_update,
)


def test_it_creates_a_person_with_normalised_identifiers(scoped):
    w = scoped
    person = person_create(
        account=w.account,
        actor=w.alice,
        name="  Ada  ",
        org_unit=w.school_n1,
        emails=[" Ada@Example.ORG "],
        phones=["+250 788-123 456"],
        external_ids=["moodle:42"],
    )
    values = set(person.identifiers.values_list("kind", "system", "value"))
    assert person.name == "Ada"
    assert values == {
        ("email", "", "ada@example.org"),
        ("phone", "", "tel:+250788123456"),
        ("external", "moodle", "42"),
    }


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("+250788123456", "tel:+250788123456"),
        ("tel:+250 788 123 456", "tel:+250788123456"),
        ("TEL:+33-6-12-34-56-78", "tel:+33612345678"),
    ],
)
def test_it_normalises_phone_urns(raw, expected):
    assert normalise_phone(raw) == expected


@pytest.mark.parametrize("raw", ["0788123456", "+25078812345a", "+12", "tel:", ""])
def test_it_rejects_bad_phones(raw):
    with pytest.raises(PeopleError) as err:
        normalise_phone(raw)
    assert err.value.field == "phones"


def test_it_rejects_a_bad_email(scoped):
    with pytest.raises(PeopleError) as err:
        person_create(account=scoped.account, actor=None, name="X", emails=["not-an-email"])
    assert err.value.field == "emails"
    assert "not-an-email" in err.value.message
    assert not Person.objects.exists()


def test_it_refuses_an_email_that_belongs_to_someone_else(scoped):
    w = scoped
    person_create(account=w.account, actor=None, name="Ada", emails=["ada@example.org"])
    with pytest.raises(PeopleError) as err:
        person_create(account=w.account, actor=None, name="Bea", emails=["ADA@example.org"])
    assert err.value.message == "ada@example.org already belongs to Ada."
    assert err.value.field == "emails"
    assert Person.objects.count() == 1


def test_it_refuses_an_empty_name(scoped):
    with pytest.raises(PeopleError) as err:
        person_create(account=scoped.account, actor=None, name="   ")
    assert err.value.field == "name"


def test_it_coerces_typed_custom_fields(scoped):
    w = scoped
    for key, type_ in (
        ("score", "number"),
        ("born", "date"),
        ("consent", "boolean"),
        ("note", "text"),
    ):
        custom_field_create(
            account=w.account, actor=w.alice, key=key, label=key.title(), type=type_
        )
    person = person_create(
        account=w.account,
        actor=None,
        name="Ada",
        fields={"score": "12.5", "born": "2001-02-03", "consent": "Yes", "note": " hi "},
    )
    assert person.fields == {"score": 12.5, "born": "2001-02-03", "consent": True, "note": "hi"}
    person = person_update(
        account=w.account, actor=None, person=person, fields={"score": "3", "consent": "0"}
    )
    assert person.fields == {"score": 3, "consent": False}


@pytest.mark.parametrize(
    "type_, raw",
    [("number", "twelve"), ("number", "nan"), ("date", "03/02/2001"), ("boolean", "maybe")],
)
def test_it_rejects_bad_typed_values(scoped, type_, raw):
    custom_field_create(account=scoped.account, actor=None, key="f", label="F", type=type_)
    with pytest.raises(PeopleError) as err:
        person_create(account=scoped.account, actor=None, name="Ada", fields={"f": raw})
    assert err.value.field == "field:f"
    assert raw in err.value.message


def test_it_rejects_an_unknown_custom_field(scoped):
    with pytest.raises(PeopleError) as err:
        person_create(account=scoped.account, actor=None, name="Ada", fields={"nope": "1"})
    assert err.value.field == "field:nope"


def test_it_audits_create_update_and_delete_with_identifiers_and_cohorts(scoped):
    w = scoped
    cohort = cohort_create(account=w.account, actor=w.alice, name="Class 1")
    person = person_create(
        account=w.account, actor=w.alice, name="Ada", emails=["ada@example.org"], cohorts=[cohort]
    )
    created = AuditEntry.objects.get(object_type="people.person", action="create")
    assert created.actor == w.alice
    assert created.changes["emails"] == [None, ["ada@example.org"]]
    assert created.changes["cohorts"] == [None, ["Class 1"]]

    person = person_update(
        account=w.account,
        actor=w.alice,
        person=person,
        name="Ada L.",
        emails=["ada@example.org", "al@example.org"],
        cohorts=[],
    )
    updated = AuditEntry.objects.get(object_type="people.person", action="update")
    assert updated.changes == {
        "name": ["Ada", "Ada L."],
        "emails": [["ada@example.org"], ["ada@example.org", "al@example.org"]],
        "cohorts": [["Class 1"], []],
    }
    person_delete(account=w.account, actor=w.alice, person=person)
    deleted = AuditEntry.objects.get(object_type="people.person", action="delete")
    assert deleted.changes["name"] == ["Ada L.", None]
    assert not Identifier.objects.exists()


def test_an_update_that_changes_nothing_leaves_no_audit_entry(scoped):
    person = person_create(account=scoped.account, actor=None, name="Ada")
    person_update(account=scoped.account, actor=None, person=person, name="Ada")
    assert not AuditEntry.objects.filter(action="update").exists()


def test_update_keeps_the_persons_own_identifiers_without_conflict(scoped):
    w = scoped
    person = person_create(account=w.account, actor=None, name="Ada", emails=["a@example.org"])
    other = person_create(account=w.account, actor=None, name="Bea", phones=["+250788000001"])
    person_update(account=w.account, actor=None, person=person, emails=["a@example.org"])
    with pytest.raises(PeopleError) as err:
        person_update(account=w.account, actor=None, person=person, phones=["+250788000001"])
    assert "Bea" in err.value.message
    assert set(other.identifiers.values_list("value", flat=True)) == {"tel:+250788000001"}


def test_it_refuses_an_org_unit_of_another_account(world):
    from closedloop.core.tenancy import account_scope

    with account_scope(world.account), pytest.raises(PeopleError) as err:
        person_create(account=world.account, actor=None, name="Ada", org_unit=world.other_root)
    assert err.value.field == "org_unit"


def test_it_refuses_duplicate_cohort_names_and_bad_field_keys(scoped):
    cohort_create(account=scoped.account, actor=None, name="Class 1")
    with pytest.raises(PeopleError):
        cohort_create(account=scoped.account, actor=None, name="class 1")
    with pytest.raises(PeopleError) as err:
        custom_field_create(account=scoped.account, actor=None, key="1 bad", label="Bad")
    assert err.value.field == "key"
    with pytest.raises(PeopleError) as err:
        custom_field_create(account=scoped.account, actor=None, key="ok", label="Ok", type="colour")
    assert err.value.field == "type"
    assert not CustomField.objects.exists()
