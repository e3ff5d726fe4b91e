"""Contacts pages: scoped list with participation icons, detail, create / edit / delete,
participation matrix and the person-page section."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from closedloop.core.tenancy import account_scope
from closedloop.jobs.models import Job
from closedloop.polls import testing as t
from closedloop.polls.models import Contact, Message

URN = "tel:+250788000001"


def _names(html: str) -> list[str]:
    return re.findall(
        r'data-testid="contact-row" data-contact="\d+">\s*<td><a href="[^"]+">([^<]+)</a>', html
    )


def _statuses(html: str, contact) -> list[str]:
    row = re.search(rf'data-contact="{contact.pk}">(.*?)</tr>', html, re.S).group(1)
    return re.findall(r'data-status="([^"]+)"', row)


def test_the_list_shows_visible_contacts_with_icons_of_the_latest_runs(polls_world, client_for):
    pw = polls_world
    html = client_for(pw.w.alice).get(reverse("polls:contact_list")).content.decode()
    assert _names(html) == ["Ana", "Ben", "Cara", "Dan"]
    # newest first: run2 (Nov 9) then run1 (Nov 2)
    assert _statuses(html, pw.ana) == ["C", "C"]
    assert _statuses(html, pw.ben) == ["-", "P"]
    assert _statuses(html, pw.dan) == ["-", "E"]
    assert _statuses(html, pw.cara) == ["P", "C"]


def test_a_supervisor_lists_only_his_panels_contacts(polls_world, client_for):
    html = client_for(polls_world.w.sam).get(reverse("polls:contact_list")).content.decode()
    assert _names(html) == ["Ana", "Ben"]
    assert "Cara" not in html and "Dan" not in html


def test_the_viewer_reads_the_list_without_edit_buttons(polls_world, client_for):
    response = client_for(polls_world.w.bob).get(reverse("polls:contact_list"))
    assert response.status_code == 200
    assert 'data-testid="add-contact"' not in response.content.decode()


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"q": "ana"}, ["Ana"]),
        ({"q": "788000003"}, []),  # the builders keep phones on the contact, not the person
        ({"cohort": "teachers"}, ["Ana", "Ben"]),
        ({"panel": "north"}, ["Ana", "Ben"]),
        ({"panel": "south"}, ["Cara", "Dan"]),
    ],
)
def test_search_and_filters(polls_world, client_for, params, expected):
    pw = polls_world
    values = {k: (getattr(pw, v).pk if k in ("cohort", "panel") else v) for k, v in params.items()}
    html = client_for(pw.w.alice).get(reverse("polls:contact_list"), values).content.decode()
    assert _names(html) == expected


def test_search_by_phone_identifier(polls_world, client_for):
    from closedloop.people.models import Identifier

    pw = polls_world
    with account_scope(pw.w.account):
        Identifier.objects.create(
            account=pw.w.account, person=pw.cara.person, kind="phone", value="tel:+250788000003"
        )
    html = client_for(pw.w.alice).get(reverse("polls:contact_list"), {"q": "788000003"})
    assert _names(html.content.decode()) == ["Cara"]


def test_sam_cannot_filter_by_a_south_panel(polls_world, client_for):
    url = reverse("polls:contact_list")
    assert (
        client_for(polls_world.w.sam).get(url, {"panel": polls_world.south.pk}).status_code == 404
    )


def test_the_list_costs_the_same_queries_for_many_contacts(
    polls_world, client_for, django_assert_max_num_queries
):
    pw = polls_world
    client = client_for(pw.w.alice)
    url = reverse("polls:contact_list")
    client.get(url)
    with account_scope(pw.w.account):
        for i in range(60):
            contact = t.make_contact(pw.connection, f"Extra {i:02}", pw.north)
            t.make_response(pw.run1, contact, {pw.q_children: 1})
    with django_assert_max_num_queries(14):
        response = client.get(url)
    assert response.status_code == 200
    assert response.content.decode().count('data-testid="contact-row"') == 50


def test_the_detail_shows_fields_responses_and_messages(polls_world, client_for):
    pw = polls_world
    with account_scope(pw.w.account):
        Message.objects.create(
            account=pw.w.account,
            connection=pw.connection,
            uuid=t.new_uuid(),
            contact=pw.ana,
            urn=URN,
            direction="in",
            text="The pump is broken",
            created_on=pw.run1.conducted_on,
        )
    html = (
        client_for(pw.w.alice)
        .get(reverse("polls:contact_detail", args=[pw.ana.pk]))
        .content.decode()
    )
    assert "Atlantis › North" in html
    assert html.count('data-testid="response"') == 2
    assert "clean water is good" in html
    assert "The pump is broken" in html
    assert "Teachers" in html


@pytest.mark.parametrize(
    "name", ["contact_detail", "contact_edit", "contact_delete", "conversation"]
)
def test_outsiders_and_out_of_scope_supervisors_get_404(polls_world, client_for, name):
    pw = polls_world
    assert client_for(pw.w.sam).get(reverse(f"polls:{name}", args=[pw.cara.pk])).status_code == 404
    assert (
        client_for(pw.w.charlie).get(reverse(f"polls:{name}", args=[pw.ana.pk])).status_code == 404
    )


@pytest.mark.parametrize("name", ["contact_edit", "contact_delete"])
def test_the_viewer_cannot_change_contacts(polls_world, client_for, name):
    pw = polls_world
    client = client_for(pw.w.bob)
    assert client.get(reverse(f"polls:{name}", args=[pw.ana.pk])).status_code == 403
    assert client.post(reverse(f"polls:{name}", args=[pw.ana.pk]), {"name": "X"}).status_code == 403
    with account_scope(pw.w.account):
        assert Contact.objects.get(pk=pw.ana.pk).is_active
        assert not Job.objects.exists()


def test_the_viewer_cannot_create_contacts(polls_world, client_for):
    client = client_for(polls_world.w.bob)
    assert client.get(reverse("polls:contact_create")).status_code == 403
    assert client.post(reverse("polls:contact_create"), {}).status_code == 403


def _form(pw, **changes):
    data = {
        "name": "Gus",
        "phones": "+250788000020",
        "panel": pw.northvale.pk,
        "cohorts": [pw.teachers.pk],
        "language": "eng",
    }
    data.update(changes)
    return data


def test_creating_a_contact_saves_it_and_queues_the_push(polls_world, client_for):
    pw = polls_world
    response = client_for(pw.w.sam).post(reverse("polls:contact_create"), _form(pw))
    assert response.status_code == 302
    with account_scope(pw.w.account):
        contact = Contact.objects.get(name="Gus")
        assert contact.org_unit_id == pw.w.district_n1.pk
        assert contact.urns == ["tel:+250788000020"]
        assert contact.push_pending
        job = Job.objects.get(kind="polls.push_contact")
        assert job.params == {"contact_id": contact.pk, "delete": False}
    assert response["Location"] == reverse("polls:contact_detail", args=[contact.pk])


def test_sam_cannot_place_a_contact_in_a_south_panel(polls_world, client_for):
    pw = polls_world
    response = client_for(pw.w.sam).post(
        reverse("polls:contact_create"), _form(pw, panel=pw.south.pk)
    )
    assert response.status_code == 400
    assert "panel" in response.context["form"].errors
    with account_scope(pw.w.account):
        assert not Contact.objects.filter(name="Gus").exists()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"phones": "0788 12"}, "phones"),
        ({"phones": ""}, "phones"),
        ({"name": ""}, "name"),
        ({"language": "english"}, "language"),
        ({"phones": "+250788000001"}, "phones"),
    ],
)
def test_bad_contact_forms_say_which_field_and_save_nothing(
    polls_world, client_for, changes, field
):
    pw = polls_world
    response = client_for(pw.w.alice).post(reverse("polls:contact_create"), _form(pw, **changes))
    assert response.status_code == 400
    assert field in response.context["form"].errors
    with account_scope(pw.w.account):
        assert Contact.objects.count() == 4
        assert not Job.objects.exists()


def test_editing_a_contact_prefills_and_pushes(polls_world, client_for):
    pw = polls_world
    client = client_for(pw.w.alice)
    url = reverse("polls:contact_edit", args=[pw.ana.pk])
    form = client.get(url).context["form"]
    assert form.initial["phones"] == "+250788000001"
    assert form.initial["cohorts"] == [pw.teachers.pk]
    response = client.post(url, _form(pw, name="Ana B", phones="+250788000001"))
    assert response.status_code == 302
    with account_scope(pw.w.account):
        contact = Contact.objects.get(pk=pw.ana.pk)
        assert contact.name == "Ana B" and contact.panel_id == pw.northvale.pk
        assert Job.objects.filter(kind="polls.push_contact").count() == 1


def test_deleting_a_contact_hides_it(polls_world, client_for):
    pw = polls_world
    client = client_for(pw.w.alice)
    response = client.post(reverse("polls:contact_delete", args=[pw.dan.pk]))
    assert response.status_code == 302
    html = client.get(reverse("polls:contact_list")).content.decode()
    assert _names(html) == ["Ana", "Ben", "Cara"]
    with account_scope(pw.w.account):
        job = Job.objects.get(kind="polls.push_contact")
        assert job.params == {"contact_id": pw.dan.pk, "delete": True}


# --- participation ------------------------------------------------------------------------


def test_the_participation_matrix(polls_world, client_for, django_assert_max_num_queries):
    pw = polls_world
    client = client_for(pw.w.alice)
    url = reverse("polls:participation")
    with django_assert_max_num_queries(16):
        html = client.get(url, {"poll": pw.poll.pk}).content.decode()
    rows = re.findall(r'data-testid="participation-row">(.*?)</tr>', html, re.S)
    matrix = {
        re.search(r">([^<]+)</a>", r).group(1): re.findall(r'data-status="([^"]+)"', r)
        for r in rows
    }
    assert matrix == {
        "Ana": ["C", "C"],
        "Ben": ["-", "P"],
        "Cara": ["P", "C"],
        "Dan": ["-", "E"],
    }


def test_participation_is_scoped(polls_world, client_for):
    pw = polls_world
    html = client_for(pw.w.sam).get(reverse("polls:participation")).content.decode()
    assert html.count('data-testid="participation-row"') == 2
    assert "Cara" not in html
    other = client_for(pw.w.charlie).get(reverse("polls:participation")).content.decode()
    assert "Ana" not in other and "Health check" not in other


# --- person page section ------------------------------------------------------------------


def test_the_person_page_shows_poll_responses_and_messages(polls_world, client_for):
    pw = polls_world
    html = (
        client_for(pw.w.alice)
        .get(reverse("people:detail", args=[pw.ana.person_id]))
        .content.decode()
    )
    assert "Poll responses &amp; messages" in html
    assert "water water everywhere" in html
    assert reverse("polls:contact_detail", args=[pw.ana.pk]) in html
