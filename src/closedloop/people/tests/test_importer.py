from __future__ import annotations

import pytest

from closedloop.core.models import AuditEntry
from closedloop.core.tabular import read_table
from closedloop.people.importer import ImportOptions, ImportOptionsError, import_people
from closedloop.people.models import Cohort, Identifier, Person
from closedloop.people.services import custom_field_create, person_create


def run(w, text, membership=None, **options):
    table = read_table(text.encode("utf-8"), filename="people.csv")
    return import_people(
        table,
        ImportOptions.from_dict(options),
        account=w.account,
        actor=w.alice,
        membership=membership,
    )


def problems(plan):
    return [(p.row, p.column, p.message) for p in plan.problems]


def test_it_imports_people_with_identifiers_units_cohorts_and_fields(scoped):
    w = scoped
    custom_field_create(account=w.account, actor=None, key="grade", label="Grade", type="number")
    custom_field_create(
        account=w.account, actor=None, key="consent", label="Consent", type="boolean"
    )
    text = (
        "\ufeffName;Email;Phone;School;Cohorts;Language;grade;consent;notes\n"
        "Ann;ANN@example.org;+250 788 000 001;NP1;Class 1, Girls;fr;5;yes;x\n"
        '"Sol\nSouth";sol@example.org;;SC1;class 1;;6.5;no;y\n'
    )
    plan, result = run(w, text, unit_column="School", unit_match="code")
    assert plan.problems == []
    assert (result.created, result.updated, result.skipped, result.cohorts_created) == (2, 0, 0, 2)
    assert result.ignored_columns == ["notes"]
    ann = Person.objects.get(name="Ann")
    assert ann.org_unit == w.school_n1 and ann.language == "fr"
    assert ann.fields == {"grade": 5, "consent": True}
    assert sorted(ann.identifiers.values_list("value", flat=True)) == [
        "ann@example.org",
        "tel:+250788000001",
    ]
    assert sorted(c.name for c in ann.cohorts.all()) == ["Class 1", "Girls"]
    sol = Person.objects.get(name="Sol\nSouth")
    assert sol.fields == {"grade": 6.5, "consent": False}
    assert [c.name for c in sol.cohorts.all()] == ["Class 1"]
    assert AuditEntry.objects.filter(object_type="people.person", action="create").count() == 2


def test_it_matches_units_by_ref_and_id(scoped):
    w = scoped
    from closedloop.registry.models import OrgUnit

    OrgUnit.objects.filter(pk=w.school_s1.pk).update(ref="dhis2-sc1")
    plan, result = run(w, "name,unit\nA,dhis2-sc1\n", unit_column="unit", unit_match="ref")
    assert result.created == 1 and Person.objects.get(name="A").org_unit_id == w.school_s1.pk
    plan, result = run(
        w, f"name,unit\nB,{w.school_n1.pk}\nC,abc\n", unit_column="unit", unit_match="id"
    )
    assert problems(plan) == [(3, "unit", "No org unit has the id “abc”.")]


def test_every_bad_row_is_reported_with_its_row_and_column_and_nothing_is_written(scoped):
    w = scoped
    custom_field_create(account=w.account, actor=None, key="born", label="Born", type="date")
    person_create(
        account=w.account,
        actor=None,
        name="Old",
        emails=["old@example.org"],
        phones=["+250788999999"],
    )
    text = (
        "name,email,phone,unit,born\n"
        "Good,good@example.org,,NP1,2001-01-01\n"  # 2
        ",nobody@example.org,,,\n"  # 3 no name
        "Bad mail,not-an-email,,,\n"  # 4
        "Bad phone,,0788,,\n"  # 5
        "Bad unit,,,XX9,\n"  # 6
        "Dup,good@example.org,,,\n"  # 7 duplicate in file
        "Bad date,,,,31/12/2001\n"  # 8
        ",,,,\n"  # 9 blank: skipped
        "Two people,old@example.org,+250788000001,,\n"  # 10 fine: updates Old
        "Conflict,x@example.org,+250788999999,,\n"  # 11 phone of Old, also on row 10? no
    )
    plan, result = run(w, text, unit_column="unit")
    assert result is None
    assert problems(plan) == [
        (3, "name", "The name is empty."),
        (4, "email", "“not-an-email” is not a valid email address."),
        (
            5,
            "phone",
            "“0788” is not a valid phone number. Write it in international form, "
            "starting with + and the country code, e.g. +250788123456.",
        ),
        (6, "unit", "No org unit has the code “XX9”."),
        (7, "email", "good@example.org is also on row 2."),
        (8, "born", "“31/12/2001” is not valid for “Born”: expected a date written YYYY-MM-DD."),
        (11, "phone", "This row and row 10 both match Old."),
    ]
    assert Person.objects.count() == 1
    assert Person.objects.get().name == "Old"


def test_identifiers_of_two_different_people_on_one_row_are_a_problem(scoped):
    w = scoped
    person_create(account=w.account, actor=None, name="Ann", emails=["ann@example.org"])
    person_create(account=w.account, actor=None, name="Bea", phones=["+250788000002"])
    plan, result = run(w, "name,email,phone\nMix,ann@example.org,+250788000002\n")
    assert result is None
    assert problems(plan) == [
        (2, "email", "The identifiers on this row belong to different people (Ann, Bea).")
    ]


def test_it_updates_people_known_by_an_identifier_instead_of_duplicating(scoped):
    w = scoped
    custom_field_create(account=w.account, actor=None, key="grade", label="Grade", type="number")
    custom_field_create(account=w.account, actor=None, key="club", label="Club")
    old = person_create(
        account=w.account,
        actor=None,
        name="Ann",
        emails=["ann@example.org"],
        org_unit=w.school_n1,
        language="en",
        fields={"club": "chess"},
    )
    plan, result = run(
        w,
        "name,email,phone,external_id,grade\nAnn Newname,Ann@Example.org,+250788000001,S-1,7\n",
        external_system="Moodle",
    )
    assert (result.created, result.updated) == (0, 1)
    old.refresh_from_db()
    assert old.name == "Ann Newname"
    assert old.org_unit == w.school_n1 and old.language == "en"  # not in the file: kept
    assert old.fields == {"club": "chess", "grade": 7}
    assert sorted(old.identifiers.values_list("kind", "system", "value")) == [
        ("email", "", "ann@example.org"),
        ("external", "moodle", "S-1"),
        ("phone", "", "tel:+250788000001"),
    ]
    assert Person.objects.count() == 1
    plan, result = run(w, "name,external_id\nAnn Again,S-1\n", external_system="moodle")
    assert (result.created, result.updated) == (0, 1)
    assert AuditEntry.objects.filter(object_id=str(old.pk), action="update").count() == 2


def test_only_valid_imports_the_good_rows_and_counts_the_skipped(scoped):
    w = scoped
    text = "name,email\nA,a@example.org\nB,bad\n,c@example.org\nD,d@example.org\n"
    plan, result = run(w, text, only_valid=True)
    assert (result.created, result.skipped) == (2, 2)
    assert sorted(Person.objects.values_list("name", flat=True)) == ["A", "D"]
    assert [p.row for p in result.problems] == [3, 4]


def test_a_supervisor_cannot_import_outside_his_subtree(scoped):
    w = scoped
    person_create(
        account=w.account, actor=None, name="Sol", emails=["sol@example.org"], org_unit=w.school_s1
    )
    text = "name,email,unit\nIn,in@example.org,NP1\nOut,out@example.org,SC1\nNowhere,nw@example.org,\nSol,sol@example.org,NP1\n"
    plan, result = run(w, text, membership=w.sam_membership, unit_column="unit")
    assert result is None
    assert problems(plan) == [
        (3, "unit", "The org unit “SC1” is outside the part of the registry you supervise."),
        (4, "name", "Give an org unit: you can only add people to the org units you supervise."),
        (
            5,
            "email",
            "This identifier already belongs to a person outside the part of the registry you supervise.",
        ),
    ]
    plan, result = run(w, text, membership=w.alice_membership, unit_column="unit")
    assert result is not None and result.created == 3 and result.updated == 1


def test_ambiguous_unit_codes_ask_to_match_by_id(scoped):
    w = scoped
    from closedloop.registry.models import OrgUnit

    OrgUnit.objects.filter(pk=w.school_s1.pk).update(code="NP1")
    plan, result = run(w, "name,unit\nA,NP1\n", unit_column="unit")
    assert problems(plan) == [(2, "unit", "2 org units have the code “NP1”; match by id instead.")]


def test_bad_mappings_are_refused_before_reading_rows(scoped):
    w = scoped
    with pytest.raises(ImportOptionsError, match="Column “mail” is not in the file"):
        run(w, "name,email\nA,a@example.org\n", email_column="mail")
    with pytest.raises(ImportOptionsError, match="“nope” is not a custom field"):
        run(w, "name,x\nA,1\n", field_columns={"x": "field:nope"})
    with pytest.raises(ImportOptionsError, match="code, ref or id"):
        ImportOptions.from_dict({"unit_match": "name"})
    with pytest.raises(ImportOptionsError, match="Unknown import options: colour"):
        ImportOptions.from_dict({"colour": "red"})
    with pytest.raises(ImportOptionsError, match="Column “name”"):
        run(w, "nom,email\nA,a@example.org\n")


def test_explicit_field_mapping_and_field_prefixed_headers(scoped):
    w = scoped
    custom_field_create(account=w.account, actor=None, key="grade", label="Grade", type="number")
    custom_field_create(account=w.account, actor=None, key="club", label="Club")
    plan, result = run(
        w, "name,Year,field:club\nA,3,chess\n", field_columns={"Year": "field:grade"}
    )
    assert Person.objects.get().fields == {"grade": 3, "club": "chess"}


def test_the_importer_uses_a_constant_number_of_queries(scoped, django_assert_max_num_queries):
    w = scoped
    for i in range(5):
        person_create(account=w.account, actor=None, name=f"Old {i}", emails=[f"p{i}@example.org"])
    rows = "".join(f"P{i},p{i}@example.org,+2507880{i:05d},NP1,c{i % 3}\n" for i in range(400))
    with django_assert_max_num_queries(25):
        plan, result = run(w, "name,email,phone,unit,cohorts\n" + rows, unit_column="unit")
    assert (result.created, result.updated, result.cohorts_created) == (395, 5, 3)
    assert Identifier.objects.count() == 800
    assert Cohort.objects.count() == 3
