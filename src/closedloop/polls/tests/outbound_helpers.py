"""Shared arrangements for the outbound, contacts and inbox tests: the polls world wired
to a running RapidPro double that knows the same flow, groups and contacts."""

from __future__ import annotations

from typing import Any

from closedloop.core.crypto import encrypt
from closedloop.core.tenancy import account_scope
from closedloop.jobs.runtime import execute_job
from closedloop.polls.models import Connection, Contact, ContactGroup


def wire(pw: Any, server: Any, extra_group: bool = True) -> dict[str, Any]:
    """Point the world's connection at ``server`` and mirror its data there.

    Returns ``{"untracked": group dict}``: a RapidPro group nobody chose as panel or cohort,
    which Ana is in (pushes must keep it).
    """
    with account_scope(pw.w.account):
        Connection.objects.filter(pk=pw.connection.pk).update(
            host_url=server.url, token_encrypted=encrypt(server.token)
        )
        pw.connection.refresh_from_db()
        server.add_flow(
            "Health check",
            [
                {"key": "children", "name": "Children", "type": "numeric"},
                {"key": "color", "name": "Color", "type": "open"},
            ],
            uuid=pw.poll.flow_uuid,
        )
        for group in ContactGroup.objects.filter(connection=pw.connection):
            server.add_group(group.name, uuid=group.uuid)
        untracked = server.add_group("Volunteers") if extra_group else None
        for contact in Contact.objects.filter(connection=pw.connection):
            groups = list(contact.group_uuids)
            if untracked and contact.pk == pw.ana.pk:
                groups.append(untracked["uuid"])
                contact.group_uuids = groups
                contact.save(update_fields=["group_uuids"])
            server.add_contact(
                contact.name,
                list(contact.urns),
                groups=groups,
                language=contact.language,
                uuid=contact.uuid,
            )
    for name in ("ana", "ben", "cara", "dan"):
        getattr(pw, name).refresh_from_db()
    return {"untracked": untracked}


def run(job: Any) -> Any:
    """Run a queued job in this process (as the worker would) and return it finished."""
    done = execute_job(job.pk)
    assert done is not None
    return done


def posts(server: Any, endpoint: str) -> list[dict[str, Any]]:
    return [
        body
        for method, path, body in server.state.requests
        if method == "POST" and path.endswith(f"/{endpoint}.json")
    ]
