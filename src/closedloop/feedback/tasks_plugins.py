"""Job handlers (registered with closedloop.jobs.runtime.register_job): plugin runs."""

from __future__ import annotations

from typing import Any

from closedloop.accounts.models import User
from closedloop.feedback.logs import log_event
from closedloop.feedback.models import Workflow
from closedloop.feedback.plugins import JOB_KIND, execute_plugin, run_plugin
from closedloop.feedback.values import FeedbackError
from closedloop.jobs.runtime import JobContext, JobError, register_job

__all__ = ["run_plugin", "run_plugin_job"]


@register_job(JOB_KIND)
def run_plugin_job(ctx: JobContext) -> dict[str, Any] | None:
    """Runs a plugin queued by ``plugins.run_plugin``; a refused or failed run leaves the
    table as it was and ends the job failed with the reason."""
    params = dict(ctx.params)
    workflow = Workflow.objects.filter(pk=params.pop("workflow_id", None)).first()
    if workflow is None:
        raise JobError("The workflow of this plugin run no longer exists.")
    actor = User.objects.filter(pk=params.pop("actor_id", None)).first()
    plugin_key = params.pop("plugin_key", "")

    def progress(done: int, total: int, message: str) -> None:
        ctx.check_cancelled()
        ctx.progress(done, total, message, force=True)

    try:
        return execute_plugin(
            workflow=workflow, actor=actor, plugin_key=plugin_key, params=params, progress=progress
        )
    except FeedbackError as exc:
        log_event(
            workflow, actor, "plugin_execute_failed", {"plugin": plugin_key, "error": exc.message}
        )
        raise JobError(exc.message) from None
