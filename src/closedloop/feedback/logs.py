"""The workflow log: every operation on a workflow with its details (OnTask's Log).

Event names follow OnTask's codes where one exists (``workflow_data_upload``,
``workflow_data_merge``, ``workflow_data_failedmerge``, ``column_add``, ``column_rename``,
``action_run_email``, ``action_email_sent``, ``action_email_read``, ...).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from closedloop.feedback.models import Workflow, WorkflowLog


def log_event(
    workflow: Workflow | None, user: Any, name: str, payload: dict[str, Any] | None = None
) -> WorkflowLog:
    return WorkflowLog.objects.create(
        account_id=workflow.account_id if workflow else None,
        workflow=workflow,
        workflow_name=workflow.name if workflow else "",
        user=user if getattr(user, "pk", None) else None,
        name=name,
        payload=payload or {},
    )


def log_events_bulk(
    workflow: Workflow, user: Any, name: str, payloads: Iterable[dict[str, Any]]
) -> int:
    """Many log rows of one kind in one INSERT (e.g. one per email sent)."""
    user = user if getattr(user, "pk", None) else None
    rows = [
        WorkflowLog(
            account_id=workflow.account_id,
            workflow=workflow,
            workflow_name=workflow.name,
            user=user,
            name=name,
            payload=p,
        )
        for p in payloads
    ]
    WorkflowLog.objects.bulk_create(rows, batch_size=2000)
    return len(rows)
