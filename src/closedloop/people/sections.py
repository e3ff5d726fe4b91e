"""Sections of the person page that other apps contribute.

The person detail page shows a person's own data (identifiers, org unit, cohorts,
custom fields) and then every registered *section*, in ``order``. Apps add theirs
once, usually in ``AppConfig.ready()``::

    from closedloop.people.sections import register_person_section

    def poll_answers_context(request, person):
        answers = list(Answer.objects.filter(contact__person=person)[:20])
        return {"answers": answers} if answers else None

    register_person_section(
        "poll-answers", _("Poll answers"), "polls/person_answers.html",
        poll_answers_context, order=30,
    )

``context_func(request, person)`` runs inside the account scope and returns the
template context, or ``None`` / an empty dict when the person has nothing to show:
the page then renders the section's title with an empty state instead of the
template. Keep it to a few queries; it runs on every page view. The template gets
the returned context plus ``person`` and ``section``.

Registering a key again replaces the earlier section (useful in tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

from closedloop.people.models import Person

ContextFunc = Callable[[HttpRequest, Person], "dict[str, Any] | None"]


@dataclass(frozen=True)
class PersonSection:
    key: str
    title: Any
    template_name: str
    context_func: ContextFunc
    order: int = 100


@dataclass(frozen=True)
class RenderedSection:
    key: str
    title: str
    html: SafeString
    is_empty: bool


_SECTIONS: dict[str, PersonSection] = {}


def register_person_section(
    key: str, title: Any, template_name: str, context_func: ContextFunc, order: int = 100
) -> PersonSection:
    section = PersonSection(key, title, template_name, context_func, order)
    _SECTIONS[key] = section
    return section


def unregister_person_section(key: str) -> None:
    _SECTIONS.pop(key, None)


def registered_sections() -> list[PersonSection]:
    return sorted(_SECTIONS.values(), key=lambda s: (s.order, s.key))


def render_sections(request: HttpRequest, person: Person) -> list[RenderedSection]:
    rendered = []
    for section in registered_sections():
        context = section.context_func(request, person)
        if not context:
            rendered.append(RenderedSection(section.key, str(section.title), mark_safe(""), True))
            continue
        html = render_to_string(
            section.template_name,
            {**context, "person": person, "section": section},
            request=request,
        )
        rendered.append(RenderedSection(section.key, str(section.title), mark_safe(html), False))
    return rendered


def _history_context(request: HttpRequest, person: Person) -> dict[str, Any] | None:
    from closedloop.people.selectors import person_history

    entries = person_history(person)
    return {"entries": entries} if entries else None


def register_builtin_sections() -> None:
    """The audit history is itself a section, shown last."""
    from django.utils.translation import gettext_lazy as _

    register_person_section(
        "history", _("History"), "people/sections/history.html", _history_context, order=1000
    )
