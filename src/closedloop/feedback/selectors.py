"""Reads that depend on who is asking. Missing and "not yours" are the same 404.

Who sees a workflow: its owner, the users it is shared with (editor or viewer) and the
account's administrators (with owner rights). Others get 404. Someone who sees a
workflow but may not do what they ask (a viewer trying to edit, an editor trying to
delete) gets 403.
"""

from __future__ import annotations

from typing import Any, Literal

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404

from closedloop.accounts.models import Membership, Role
from closedloop.feedback.models import Action, Column, ShareRole, Workflow

Need = Literal["view", "edit", "own"]

#: roles that may create workflows
CREATOR_ROLES = {Role.ADMIN, Role.MANAGER, Role.SUPERVISOR, Role.INSTRUCTOR}
_RANK = {ShareRole.VIEWER: 1, ShareRole.EDITOR: 2, ShareRole.OWNER: 3}
_NEED_RANK = {"view": 1, "edit": 2, "own": 3}


def can_create_workflows(membership: Membership | None) -> bool:
    return membership is not None and membership.role in CREATOR_ROLES


def visible_workflows(membership: Membership) -> QuerySet[Workflow]:
    qs = Workflow.objects.filter(account_id=membership.account_id)
    if membership.role == Role.ADMIN:
        return qs
    user = membership.user
    return qs.filter(Q(owner=user) | Q(shares__user=user)).distinct()


def workflow_role(membership: Membership, workflow: Workflow) -> str | None:
    """ "owner", "editor", "viewer" or None (cannot see it)."""
    if workflow.account_id != membership.account_id:
        return None
    if workflow.owner_id == membership.user_id or membership.role == Role.ADMIN:
        return ShareRole.OWNER
    share = workflow.shares.filter(user_id=membership.user_id).only("role").first()
    return share.role if share else None


def get_workflow(membership: Membership | None, pk: Any, need: Need = "view") -> Workflow:
    """The workflow ``pk`` if ``membership`` may ``need`` it; 404 if they cannot see it,
    403 if they see it but may not do that. Sets ``workflow.user_role``."""
    if membership is None:
        raise Http404
    try:
        workflow = Workflow.objects.select_related("owner").get(
            pk=int(pk), account_id=membership.account_id
        )
    except (Workflow.DoesNotExist, ValueError, TypeError):
        raise Http404 from None
    role = workflow_role(membership, workflow)
    if role is None:
        raise Http404
    if _RANK[ShareRole(role)] < _NEED_RANK[need]:
        raise PermissionDenied
    workflow.user_role = role  # type: ignore[attr-defined]
    return workflow


def get_action(
    membership: Membership | None, workflow_pk: Any, pk: Any, need: Need = "view"
) -> Action:
    workflow = get_workflow(membership, workflow_pk, need)
    try:
        action = Action.objects.get(pk=int(pk), workflow=workflow)
    except (Action.DoesNotExist, ValueError, TypeError):
        raise Http404 from None
    action.workflow = workflow  # keeps user_role
    return action


def columns_of(workflow: Workflow) -> list[Column]:
    """The workflow's columns in display order."""
    return list(Column.objects.filter(workflow=workflow).order_by("position", "id"))
