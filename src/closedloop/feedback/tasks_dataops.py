"""Job handlers of data operations: large wizard uploads and merges run here.

Each takes ``{"workflow", "token", "user", "expected_version"}``, loads the staged data
and runs the same steps as the pages; a refused merge ends the job with its message
and leaves the table unchanged.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.utils.translation import gettext as _

from closedloop.feedback.dataops import staging, wizard
from closedloop.feedback.dataops.errors import FeedbackError
from closedloop.feedback.dataops.refresh import refresh_from_source
from closedloop.feedback.models import Workflow
from closedloop.jobs.runtime import JobContext, JobError, register_job


def _load(ctx: JobContext) -> tuple[Workflow, Any]:
    params = ctx.params
    workflow = (
        Workflow.objects.select_related("account")
        .filter(pk=int(params.get("workflow") or 0))
        .first()
    )
    user = get_user_model().objects.filter(pk=int(params.get("user") or 0)).first()
    if workflow is None or user is None:
        raise JobError(_("The workflow or its user no longer exists."))
    return workflow, user


@register_job("feedback.upload")
@register_job("feedback.merge")
def run_staged_upload(ctx: JobContext) -> dict[str, Any]:
    workflow, user = _load(ctx)
    ctx.progress(0, 3, _("Reading the staged data"), force=True)
    staged = staging.load(
        ctx.params["token"],
        account_id=workflow.account_id,
        workflow_id=workflow.pk,
        user_id=user.pk,
    )
    ctx.progress(
        1, 3, _("Checking and merging %(n)d rows") % {"n": staged.parsed.nrows}, force=True
    )
    ctx.check_cancelled()
    try:
        result = wizard.run(
            workflow, user, staged, expected_version=ctx.params.get("expected_version")
        )
    except FeedbackError as exc:
        raise JobError(str(exc)) from None
    ctx.progress(3, 3, _("Done"), force=True)
    return result.counts()


@register_job("feedback.refresh")
def run_refresh(ctx: JobContext) -> dict[str, Any]:
    """Refresh from an SQL connection or a table source (``params["spec"]``)."""
    workflow, user = _load(ctx)
    ctx.progress(0, 1, _("Reading the source"), force=True)
    try:
        result = refresh_from_source(workflow=workflow, actor=user, spec=ctx.params["spec"])
    except FeedbackError as exc:
        raise JobError(str(exc)) from None
    ctx.progress(1, 1, _("Done"), force=True)
    return result.counts()
