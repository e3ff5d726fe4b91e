"""What the polls module offers other modules: the RapidPro SMS sender (core.channels),
the polls table source (core.tablesource), the person-page section and the demo."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def person_section_context(request: HttpRequest, person: Any) -> dict[str, Any] | None:
    """The person's RapidPro contact: responses with answers and recent messages."""
    from closedloop.polls.selectors import visible_contacts
    from closedloop.polls.selectors_contacts import contact_history

    membership = getattr(request, "membership", None)
    if membership is None:
        return None
    contact = (
        visible_contacts(membership)
        .select_related("panel", "connection")
        .filter(person=person)
        .first()
    )
    if contact is None:
        return None
    return {"contact": contact, **contact_history(membership, contact)}


def register_all() -> None:
    """Called once from ``PollsConfig.ready``."""
    from django.utils.translation import gettext_lazy as _

    from closedloop.core.channels import sms_senders
    from closedloop.core.demo import register_demo_extension
    from closedloop.people.sections import register_person_section
    from closedloop.polls import demo, sms, tablesource

    if sms.KEY not in sms_senders.factories:
        sms_senders.register(sms.KEY, sms.sender_for_account)
    tablesource.register_table_source()
    register_person_section(
        "polls",
        _("Poll responses & messages"),
        "polls/person_section.html",
        person_section_context,
        order=40,
    )
    register_demo_extension("polls", demo.build_polls_demo, demo.purge_polls_demo)
