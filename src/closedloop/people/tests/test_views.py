from __future__ import annotations

import pytest
from django.urls import reverse

from closedloop.core.models import AuditEntry
from closedloop.core.tenancy import account_scope
from closedloop.people.models import Cohort, CustomField, Person
from closedloop.people.sections import register_person_section, unregister_person_section
from closedloop.people.services import (
    cohort_create,
    custom_field_create,
    person_create,
    person_update,
)

LIST = reverse("people:list")


def detail(person):
    return reverse("people:detail", args=[person.pk])


# --- list -----------------------------------------------------------------------------


def test_the_list_shows_everyone_to_alice_with_unit_paths(client_for, world, people):
    response = client_for(world.alice).get(LIST)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Ann North" in html and "Sol South" in html and "Nia Nowhere" in html
    assert "Northvale Primary</div>" in html and "Atlantis › North › Northvale<" in html
    assert 'data-testid="add-person"' in html


def test_bob_sees_the_list_without_edit_buttons(client_for, world, people):
    html = client_for(world.bob).get(LIST).content.decode()
    assert "Ann North" in html
    assert 'data-testid="add-person"' not in html


def test_sam_sees_only_norths_people(client_for, world, people):
    html = client_for(world.sam).get(LIST).content.decode()
    assert "Ann North" in html
    assert "Sol South" not in html and "Nia Nowhere" not in html


def test_charlie_sees_none_of_account_as_people(client_for, world, people):
    response = client_for(world.charlie).get(LIST)
    assert response.status_code == 200
    assert "Ann North" not in response.content.decode()
    assert 'data-testid="empty"' in response.content.decode()


def test_the_list_filters_by_org_unit_subtree(client_for, world, people):
    html = client_for(world.alice).get(LIST, {"org_unit": world.region_south.pk}).content.decode()
    assert "Sol South" in html and "Ann North" not in html
    assert 'data-testid="unit-filter"' in html


def test_an_org_unit_filter_outside_the_scope_is_a_404(client_for, world, people):
    client = client_for(world.sam)
    assert client.get(LIST, {"org_unit": world.region_south.pk}).status_code == 404
    assert client.get(LIST, {"org_unit": "x"}).status_code == 404
    assert client_for(world.charlie).get(LIST, {"org_unit": world.country.pk}).status_code == 404


def test_the_list_filters_by_cohort_activity_and_search(client_for, world, people):
    with account_scope(world.account):
        cohort = cohort_create(account=world.account, actor=None, name="Class 1")
        person_update(account=world.account, actor=None, person=people["sol"], cohorts=[cohort])
        person_update(account=world.account, actor=None, person=people["nia"], is_active=False)
    client = client_for(world.alice)
    html = client.get(LIST, {"cohort": cohort.pk}).content.decode()
    assert "Sol South" in html and "Ann North" not in html
    html = client.get(LIST, {"active": "no"}).content.decode()
    assert "Nia Nowhere" in html and "Ann North" not in html
    html = client.get(LIST, {"q": "ann@"}).content.decode()
    assert "Ann North" in html and "Sol South" not in html
    assert client.get(LIST, {"cohort": "999999"}).status_code == 404
    html = client.get(LIST, {"q": "zzz"}).content.decode()
    assert "Nobody matches this search" in html


def test_a_cohort_of_another_account_is_a_404(client_for, world, people):
    from closedloop.core.tenancy import scopes_disabled

    with scopes_disabled():
        other = Cohort.objects.create(account=world.other_account, name="Theirs")
    assert client_for(world.alice).get(LIST, {"cohort": other.pk}).status_code == 404


def test_htmx_search_returns_only_the_results_fragment(client_for, world, people):
    response = client_for(world.alice).get(
        LIST, {"q": "sol"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="people-results"
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="people-results">')
    assert "Sol South" in html and "<nav" not in html.split("people-results", 1)[0]


def test_the_list_paginates_and_keeps_a_constant_query_count(
    client_for, world, django_assert_max_num_queries
):
    with account_scope(world.account):
        cohort = cohort_create(account=world.account, actor=None, name="Class 1")
        for i in range(60):
            person_create(
                account=world.account,
                actor=None,
                name=f"Person {i:02d}",
                org_unit=world.school_n1,
                emails=[f"p{i}@example.org"],
                phones=[f"+25078800{i:04d}"],
                cohorts=[cohort],
            )
    client = client_for(world.alice)
    with django_assert_max_num_queries(11):
        response = client.get(LIST)
    html = response.content.decode()
    assert html.count('data-testid="person-row"') == 50
    assert "Page 1 of 2" in html
    html = client.get(LIST, {"page": 2}).content.decode()
    assert html.count('data-testid="person-row"') == 10


# --- detail ---------------------------------------------------------------------------


def test_the_detail_page_shows_identifiers_breadcrumbs_fields_and_history(
    client_for, world, people
):
    with account_scope(world.account):
        custom_field_create(
            account=world.account, actor=None, key="grade", label="Grade", type="number"
        )
        person_update(
            account=world.account, actor=world.alice, person=people["ann"], fields={"grade": "5"}
        )
    html = client_for(world.alice).get(detail(people["ann"])).content.decode()
    assert "ann@example.org" in html and "tel:+250788000001" in html
    assert f'?org_unit={world.region_north.pk}"' in html
    assert "Grade" in html and ">5<" in html
    assert 'data-testid="section-history"' in html
    assert "Alice Admin" in html


@pytest.mark.parametrize(
    "who, status", [("alice", 200), ("bob", 200), ("sam", 200), ("charlie", 404)]
)
def test_who_may_see_a_north_person(client_for, world, people, who, status):
    assert client_for(getattr(world, who)).get(detail(people["ann"])).status_code == status


@pytest.mark.parametrize("person", ["sol", "nia"])
def test_sam_gets_404_outside_his_subtree(client_for, world, people, person):
    assert client_for(world.sam).get(detail(people[person])).status_code == 404


def test_a_missing_person_is_a_404(client_for, world):
    assert client_for(world.alice).get("/people/999999/").status_code == 404


def test_registered_sections_render_or_show_an_empty_state(client_for, world, people):
    register_person_section(
        "test-data",
        "Poll answers",
        "people/tests/section.html",
        lambda request, person: {"answer": "42"} if person.name == "Ann North" else None,
        order=5,
    )
    try:
        client = client_for(world.alice)
        html = client.get(detail(people["ann"])).content.decode()
        assert "Poll answers" in html and "The answer is 42 for Ann North" in html
        assert html.index("section-test-data") < html.index("section-history")
        html = client.get(detail(people["sol"])).content.decode()
        assert "Poll answers" in html and "Nothing recorded yet." in html
    finally:
        unregister_person_section("test-data")


# --- create, edit, delete -------------------------------------------------------------


def test_alice_creates_a_person(client_for, world):
    with account_scope(world.account):
        cohort = cohort_create(account=world.account, actor=None, name="Class 1")
        custom_field_create(
            account=world.account, actor=None, key="consent", label="Consent", type="boolean"
        )
    response = client_for(world.alice).post(
        reverse("people:create"),
        {
            "name": "Zoe",
            "org_unit": world.school_s1.pk,
            "emails": "Zoe@Example.org\n",
            "phones": "+250 788 111 222",
            "external_ids": "moodle:7",
            "cohorts": [cohort.pk],
            "language": "fr",
            "is_active": "on",
            "cf_consent": "true",
        },
    )
    with account_scope(world.account):
        person = Person.objects.get(name="Zoe")
        assert response.status_code == 302 and response["Location"] == detail(person)
        assert sorted(person.identifiers.values_list("value", flat=True)) == [
            "7",
            "tel:+250788111222",
            "zoe@example.org",
        ]
        assert person.fields == {"consent": True}
        assert list(person.cohorts.all()) == [cohort]
        assert AuditEntry.objects.filter(object_type="people.person", actor=world.alice).exists()


def test_a_bad_phone_shows_the_error_on_the_form(client_for, world):
    response = client_for(world.alice).post(
        reverse("people:create"), {"name": "Zoe", "phones": "0788"}
    )
    assert response.status_code == 200
    assert "is not a valid phone number" in response.content.decode()
    with account_scope(world.account):
        assert not Person.objects.exists()


def test_an_email_already_taken_shows_who_has_it(client_for, world, people):
    response = client_for(world.alice).post(
        reverse("people:create"), {"name": "Zoe", "emails": "ann@example.org"}
    )
    assert "ann@example.org already belongs to Ann North." in response.content.decode()


def test_sam_may_only_pick_units_he_supervises(client_for, world, people):
    client = client_for(world.sam)
    html = client.get(reverse("people:create")).content.decode()
    assert "Northvale Primary" in html and "Southport Clinic" not in html
    response = client.post(
        reverse("people:create"), {"name": "Zoe", "org_unit": world.school_s1.pk}
    )
    assert response.status_code == 200
    response = client.post(reverse("people:create"), {"name": "Zoe"})
    assert response.status_code == 200  # a supervisor must place the person
    with account_scope(world.account):
        assert not Person.objects.filter(name="Zoe").exists()
    response = client.post(
        reverse("people:create"), {"name": "Zoe", "org_unit": world.school_n1.pk}
    )
    assert response.status_code == 302


def test_bob_may_not_create_edit_or_delete(client_for, world, people):
    client = client_for(world.bob)
    assert client.get(reverse("people:create")).status_code == 403
    assert (
        client.post(reverse("people:edit", args=[people["ann"].pk]), {"name": "X"}).status_code
        == 403
    )
    assert client.post(reverse("people:delete", args=[people["ann"].pk])).status_code == 403


def test_alice_edits_a_person(client_for, world, people):
    url = reverse("people:edit", args=[people["ann"].pk])
    client = client_for(world.alice)
    assert 'value="Ann North"' in client.get(url).content.decode()
    response = client.post(
        url, {"name": "Ann N.", "org_unit": world.school_n1.pk, "emails": "ann@example.org"}
    )
    assert response.status_code == 302
    with account_scope(world.account):
        person = Person.objects.get(pk=people["ann"].pk)
        assert person.name == "Ann N."
        assert list(person.identifiers.values_list("value", flat=True)) == ["ann@example.org"]
        assert person.is_active is False  # unchecked box


@pytest.mark.parametrize("who, person", [("charlie", "ann"), ("sam", "sol"), ("sam", "nia")])
def test_edit_and_delete_of_a_person_not_yours_is_a_404(client_for, world, people, who, person):
    client = client_for(getattr(world, who))
    pk = people[person].pk
    assert client.get(reverse("people:edit", args=[pk])).status_code == 404
    assert client.post(reverse("people:delete", args=[pk])).status_code == 404
    with account_scope(world.account):
        assert Person.objects.filter(pk=pk).exists()


def test_delete_asks_then_deletes(client_for, world, people):
    url = reverse("people:delete", args=[people["ann"].pk])
    client = client_for(world.sam)
    assert "Delete Ann North?" in client.get(url).content.decode()
    assert client.post(url)["Location"] == LIST
    with account_scope(world.account):
        assert not Person.objects.filter(pk=people["ann"].pk).exists()


# --- cohorts and custom fields --------------------------------------------------------


def test_the_cohort_page_counts_members_and_creates_cohorts(client_for, world, people):
    with account_scope(world.account):
        cohort = cohort_create(account=world.account, actor=None, name="Class 1")
        for person in people.values():
            person_update(account=world.account, actor=None, person=person, cohorts=[cohort])
    url = reverse("people:cohorts")
    assert ">3</span>" in client_for(world.alice).get(url).content.decode()
    assert ">1</span>" in client_for(world.sam).get(url).content.decode()
    response = client_for(world.alice).post(url, {"name": "Class 2"})
    assert response.status_code == 302
    response = client_for(world.alice).post(url, {"name": "class 2"})
    assert "already exists" in response.content.decode()
    assert client_for(world.bob).post(url, {"name": "Class 3"}).status_code == 403
    assert "Class 1" not in client_for(world.charlie).get(url).content.decode()


def test_only_admins_manage_custom_fields(client_for, world):
    url = reverse("people:fields")
    assert client_for(world.bob).get(url).status_code == 403
    assert client_for(world.sam).get(url).status_code == 403
    response = client_for(world.alice).post(
        url, {"key": "grade", "label": "Grade", "type": "number"}
    )
    assert response.status_code == 302
    response = client_for(world.alice).post(url, {"key": "Bad Key", "label": "X", "type": "text"})
    assert "A key starts with a letter" in response.content.decode()
    with account_scope(world.account):
        assert list(CustomField.objects.values_list("key", flat=True)) == ["grade"]
    assert "grade" not in client_for(world.charlie).get(url).content.decode()


def test_anonymous_users_are_sent_to_login(client, world):
    response = client.get(LIST)
    assert response.status_code == 302 and "login" in response["Location"]
