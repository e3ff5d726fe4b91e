"""The table page: paging, sorting, search, views, downloads, undo, and read-only rules."""

from __future__ import annotations

import csv
import io

import polars as pl
import pytest
from django.urls import reverse

from closedloop.core.tenancy import account_scope
from closedloop.feedback import services
from closedloop.feedback.models import Column, Filter, View, Workflow
from closedloop.feedback.tests.conftest import login

pytestmark = pytest.mark.django_db


def big_class(n: int = 120) -> dict[str, list]:
    """n learners: l000@… keys, a score that is NULL for every 10th, two groups."""
    return {
        "email": [f"l{i:03d}@example.org" for i in range(n)],
        "name": [("Zoë " if i % 7 == 0 else "Sam ") + str(i) for i in range(n)],
        "score": [None if i % 10 == 0 else float((i * 37) % 101) for i in range(n)],
        "group": ["A" if i % 2 else "B" for i in range(n)],
    }


@pytest.fixture
def course(shared_course):
    return shared_course


@pytest.fixture
def big(world, make_workflow):
    return make_workflow(
        name="Big",
        data=big_class(),
        types={"email": "string", "name": "string", "score": "double", "group": "string"},
    )


def column(world, workflow, name):
    with account_scope(world.account):
        return Column.objects.get(workflow=workflow, name=name)


def emails_on(html: str) -> list[str]:
    import re

    return re.findall(r'data-testid="row-link"><bdi>([^<]+)<', html)


# --- access ----------------------------------------------------------------------------


def test_table_renders_for_owner_editor_and_viewer_and_only_editors_get_edit_controls(
    world, course, client_for
):
    url = reverse("feedback:table", args=[course.pk])
    for user in (world.alice, world.sam):
        html = client_for(user).get(url).content.decode()
        assert "ana@example.org" in html
        assert 'data-testid="row-add"' in html and 'data-testid="column-add"' in html
        assert 'data-testid="column-edit-link"' in html
    viewer = client_for(world.bob).get(url).content.decode()
    assert "ana@example.org" in viewer and 'data-testid="download-csv"' in viewer
    for marker in ("row-add", "column-add", "column-edit-link", "undo"):
        assert f'data-testid="{marker}"' not in viewer


def test_outsiders_get_404_and_viewers_403_on_table_writes(
    world, course, make_workflow, client_for
):
    private = make_workflow(name="Private")
    reads = [
        reverse("feedback:table", args=[private.pk]),
        reverse("feedback:table_download", args=[private.pk, "csv"]),
        reverse("feedback:row_edit", args=[private.pk]) + "?key=email&value=ana@example.org",
    ]
    bob = login(world.bob)
    for url in reads:
        assert bob.get(url).status_code == 404, url
    charlie = login(world.charlie)
    for url in reads:
        assert charlie.get(url.replace(f"/{private.pk}/", f"/{course.pk}/")).status_code == 404
    for name in ("table_undo", "row_add", "row_delete", "column_add"):
        assert bob.post(reverse(f"feedback:{name}", args=[course.pk])).status_code == 403, name
        assert charlie.post(reverse(f"feedback:{name}", args=[course.pk])).status_code == 404
    with account_scope(world.account):
        assert Workflow.objects.get(pk=course.pk).nrows == 6


# --- paging, sorting, search ------------------------------------------------------------


def test_pages_hold_50_rows_and_the_last_page_the_rest(world, big, client_for):
    client = client_for(world.alice)
    url = reverse("feedback:table", args=[big.pk])
    first = client.get(url).content.decode()
    assert first.count('data-testid="data-row"') == 50
    assert "Rows 1–50 of 120" in first and "Page 1 of 3" in first
    last = client.get(url, {"page": 3}).content.decode()
    assert last.count('data-testid="data-row"') == 20 and "Rows 101–120 of 120" in last
    # past the end: the last page
    assert "Rows 101–120" in client.get(url, {"page": 99}).content.decode()


def test_sorting_by_a_column_orders_every_page_with_nulls_last(world, big, client_for):
    score = column(world, big, "score")
    client = client_for(world.alice)
    url = reverse("feedback:table", args=[big.pk])
    expected = sorted(
        (s, e)
        for e, s in zip(big_class()["email"], big_class()["score"], strict=True)
        if s is not None
    )
    pages = [
        emails_on(client.get(url, {"sort": score.pk, "page": p}).content.decode())
        for p in (1, 2, 3)
    ]
    shown = pages[0] + pages[1] + pages[2]
    assert shown[: len(expected)] == [e for _s, e in expected]
    assert len(shown) == 120  # the 12 NULL scores come last
    descending = emails_on(client.get(url, {"sort": score.pk, "desc": "1"}).content.decode())
    assert descending[12] == expected[-1][1]  # NULLs first when descending


def test_search_finds_rows_in_any_column_and_counts_them(world, big, client_for):
    client = client_for(world.alice)
    url = reverse("feedback:table", args=[big.pk])
    html = client.get(url, {"q": "zoë"}).content.decode()
    zoes = [e for i, e in enumerate(big_class()["email"]) if i % 7 == 0]
    assert sorted(emails_on(html)) == zoes
    assert f"of {len(zoes)}" in html
    assert "No row matches" in client.get(url, {"q": "nobody-at-all"}).content.decode()


def test_search_and_sort_combine_and_htmx_gets_only_the_results(world, big, client_for):
    score = column(world, big, "score")
    fragment = (
        client_for(world.alice)
        .get(
            reverse("feedback:table", args=[big.pk]),
            {"q": "sam 1", "sort": score.pk, "desc": "1"},
            HTTP_HX_REQUEST="true",
            HTTP_HX_TARGET="table-results",
        )
        .content.decode()
    )
    assert fragment.lstrip().startswith('<div id="table-results"')
    rows = [
        (s, e)
        for i, (e, s) in enumerate(zip(big_class()["email"], big_class()["score"], strict=True))
        if i % 7 and "sam 1" in f"sam {i}"
    ]
    nulls = [e for s, e in rows if s is None][::-1]  # ties: the later row first
    ordered = nulls + [e for _s, e in sorted((r for r in rows if r[0] is not None), reverse=True)]
    assert emails_on(fragment) == ordered[:50]


def test_table_page_query_count_is_bounded(world, big, client_for, django_assert_max_num_queries):
    client = client_for(world.alice)
    score = column(world, big, "score")
    with django_assert_max_num_queries(14):
        response = client.get(
            reverse("feedback:table", args=[big.pk]), {"sort": score.pk, "q": "sam"}
        )
    assert response.status_code == 200


def test_an_empty_workflow_invites_an_upload(world, client_for):
    with account_scope(world.account):
        workflow = services.workflow_create(account=world.account, actor=world.alice, name="New")
    html = (
        client_for(world.alice).get(reverse("feedback:table", args=[workflow.pk])).content.decode()
    )
    assert 'data-testid="table-empty"' in html and "Upload a file" in html


# --- downloads -------------------------------------------------------------------------


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_csv_download_parses_back_to_the_same_table(world, course, client_for):
    response = client_for(world.bob).get(
        reverse("feedback:table_download", args=[course.pk, "csv"])
    )
    assert response.status_code == 200 and "course.csv" in response["Content-Disposition"]
    text = _body(response).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["email"] for r in rows][:2] == ["ana@example.org", "ben@example.org"]
    assert rows[0]["score"] == "91.5" and rows[3]["score"] == ""
    assert rows[0]["passed"] == "true" and rows[3]["passed"] == ""
    assert rows[2]["submitted"].startswith("2024-03-03T08:15:30")
    frame = pl.read_csv(io.BytesIO(text.encode()))
    assert frame.height == 6 and frame.columns[0] == "email"


def test_xlsx_download_parses_back(world, course, client_for):
    from openpyxl import load_workbook

    response = client_for(world.alice).get(
        reverse("feedback:table_download", args=[course.pk, "xlsx"])
    )
    book = load_workbook(io.BytesIO(_body(response)), read_only=True)
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    assert rows[0] == ("email", "name", "score", "attempts", "passed", "submitted")
    assert rows[1][:5] == ("ana@example.org", "Ana", 91.5, 1, True)
    assert rows[4][2] is None and len(rows) == 7


def test_unknown_download_format_is_404(world, course, client_for):
    url = reverse("feedback:table_download", args=[course.pk, "pdf"])
    assert client_for(world.alice).get(url).status_code == 404


# --- views -----------------------------------------------------------------------------


@pytest.fixture
def passing_view(world, course):
    with account_scope(world.account):
        cols = {c.name: c for c in Column.objects.filter(workflow=course)}
        flt = Filter.objects.create(
            account=world.account,
            workflow=course,
            name="Scored above 50",
            formula={
                "condition": "AND",
                "rules": [
                    {
                        "id": "score",
                        "field": "score",
                        "type": "double",
                        "operator": "greater",
                        "value": 50,
                    }
                ],
            },
        )
        return View.objects.create(
            account=world.account,
            workflow=course,
            name="Good scores",
            column_ids=[cols["email"].pk, cols["score"].pk],
            filter=flt,
        )


def test_a_view_shows_its_columns_and_its_filtered_rows(world, course, passing_view, client_for):
    url = reverse("feedback:view_table", args=[course.pk, passing_view.pk])
    html = client_for(world.bob).get(url).content.decode()
    assert 'data-testid="view-banner"' in html and "Good scores" in html
    assert emails_on(html) == ["ana@example.org", "chloe@example.org", "eve@example.org"]
    assert ">attempts<" not in html
    response = client_for(world.bob).get(
        reverse("feedback:view_download", args=[course.pk, passing_view.pk, "csv"])
    )
    rows = list(csv.reader(io.StringIO(_body(response).decode("utf-8-sig"))))
    assert rows == [
        ["email", "score"],
        ["ana@example.org", "91.5"],
        ["chloe@example.org", "75.25"],
        ["eve@example.org", "62.0"],
    ]


def test_a_view_of_another_workflow_is_404(world, course, passing_view, make_workflow, client_for):
    other = make_workflow(name="Other")
    url = reverse("feedback:view_table", args=[other.pk, passing_view.pk])
    assert client_for(world.alice).get(url).status_code == 404
    url = reverse("feedback:view_table", args=[course.pk, passing_view.pk])
    assert client_for(world.charlie).get(url).status_code == 404


# --- undo ------------------------------------------------------------------------------


def test_undo_restores_the_table_before_the_last_upload(world, course, client_for):
    client = client_for(world.sam)
    with account_scope(world.account):
        services.table_load(
            workflow=course,
            actor=world.alice,
            frame=pl.DataFrame({"email": ["x@example.org"], "mark": [1]}),
            keys=["email"],
            label="second upload",
        )
    html = client.get(reverse("feedback:table", args=[course.pk])).content.decode()
    assert "second upload" in html and 'data-testid="undo"' in html
    response = client.post(reverse("feedback:table_undo", args=[course.pk]), follow=True)
    assert "Undone: second upload" in response.content.decode()
    with account_scope(world.account):
        assert Workflow.objects.get(pk=course.pk).nrows == 6
