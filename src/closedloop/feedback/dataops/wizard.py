"""The wizard's steps as functions of the staged upload, shared by the pages (small
uploads, run inline) and the job handlers (large ones)."""

from __future__ import annotations

from typing import Any

from closedloop.feedback.dataops.choices import (
    Prepared,
    apply_choices,
    choices_from_dicts,
    default_choices,
)
from closedloop.feedback.dataops.merge import MergeResult, merge_frame
from closedloop.feedback.dataops.staging import Staged
from closedloop.feedback.models import Column, Workflow

#: uploads with more rows than this run as a background job
JOB_THRESHOLD = 20_000


def time_zone_of(workflow: Workflow) -> str:
    return getattr(workflow.account, "time_zone", "") or "UTC"


def is_empty(workflow: Workflow) -> bool:
    return not Column.objects.filter(workflow=workflow).exists()


def prepare(workflow: Workflow, staged: Staged) -> Prepared:
    items = staged.state.get("choices")
    choices = choices_from_dicts(items) if items else default_choices(staged.parsed)
    return apply_choices(
        staged.parsed,
        choices,
        time_zone=time_zone_of(workflow),
        require_key=is_empty(workflow),
    )


def _merge(workflow: Workflow, actor: Any, staged: Staged, *, dry_run: bool,
           expected_version: int | None = None) -> MergeResult:  # fmt: skip
    prepared = prepare(workflow, staged)
    options = staged.state.get("merge") or {}
    right_on = options.get("right_on") or (prepared.keys[0] if prepared.keys else "")
    return merge_frame(
        workflow=workflow,
        actor=actor,
        frame=prepared.frame,
        types=prepared.types,
        how=options.get("how", "outer"),
        left_on=options.get("left_on", right_on),
        right_on=right_on,
        clear_with_empty=bool(options.get("clear_with_empty")),
        dry_run=dry_run,
        label=str(staged.state.get("label") or "merge"),
        renames=prepared.renames,
        ignored=prepared.ignored,
        keys=prepared.keys,
        row_numbers=prepared.row_numbers,
        expected_version=expected_version,
    )


def preview(workflow: Workflow, actor: Any, staged: Staged) -> MergeResult:
    return _merge(workflow, actor, staged, dry_run=True)


def run(workflow: Workflow, actor: Any, staged: Staged, expected_version: int | None = None) -> MergeResult:  # fmt: skip
    result = _merge(workflow, actor, staged, dry_run=False, expected_version=expected_version)
    staged.save_state(result=result.counts(), done=True)
    staged.drop_data()
    return result
