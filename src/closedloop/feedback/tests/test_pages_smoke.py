"""Every page of the workflow area renders (a quick pass over all of them)."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_every_page_renders_for_the_owner(world, make_workflow, client_for):
    wf = make_workflow()
    client = client_for(world.alice)
    from closedloop.core.tenancy import account_scope
    from closedloop.feedback.models import Column

    with account_scope(world.account):
        score = Column.objects.get(workflow=wf, name="score")
    urls = [
        reverse("feedback:workflow_list"),
        reverse("feedback:workflow_create"),
        reverse("feedback:table", args=[wf.pk]),
        reverse("feedback:table", args=[wf.pk]) + f"?q=a&sort={score.pk}&desc=1",
        reverse("feedback:workflow_settings", args=[wf.pk]),
        reverse("feedback:row_add", args=[wf.pk]),
        reverse("feedback:row_edit", args=[wf.pk]) + "?key=email&value=ana@example.org",
        reverse("feedback:column_add", args=[wf.pk]),
        reverse("feedback:column_edit", args=[wf.pk, score.pk]),
        reverse("feedback:stats", args=[wf.pk]),
        reverse("feedback:stats_column", args=[wf.pk, score.pk]),
        reverse("feedback:stats_row", args=[wf.pk]) + "?key=email&value=ana@example.org",
        reverse("feedback:log_list", args=[wf.pk]),
        reverse("feedback:log_export", args=[wf.pk]),
        reverse("feedback:table_download", args=[wf.pk, "csv"]),
        reverse("feedback:table_download", args=[wf.pk, "xlsx"]),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
