"""Inbox (latest message per contact), one contact's conversation with a reply box, and the
log of every message sent from closedloop."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from closedloop.polls import outbound, selectors
from closedloop.polls import selectors_contacts as reads
from closedloop.polls.forms_contacts import ReplyForm
from closedloop.polls.models import Broadcast, Connection
from closedloop.polls.views_contacts import (
    _query_without_page,
    member_required,
    membership_of,
    require_act,
)

PAGE_SIZE = 30
LOG_PAGE_SIZE = 50


@member_required
def inbox(request: HttpRequest) -> HttpResponse:
    membership = membership_of(request)
    q = request.GET.get("q", "")
    page = Paginator(reads.inbox_entries(membership, q), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    contacts = reads.inbox_contacts(list(page.object_list))
    latest = reads.latest_messages([c.pk for c in contacts])
    context = {
        "page": page,
        "rows": [(c, latest.get(c.pk)) for c in contacts],
        "q": q,
        "query": _query_without_page(request),
        "can_act": selectors.can_act(membership),
    }
    return render(request, "polls/inbox/inbox.html", context)


@member_required
@require_POST
def inbox_refresh(request: HttpRequest) -> HttpResponse:
    """Fetch messages from every active connection now."""
    membership = membership_of(request)
    require_act(membership)
    fetched, failed = 0, []
    for connection in Connection.objects.filter(is_active=True):
        try:
            counts = outbound.refresh_messages(connection)
        except Exception as exc:  # shown to the user; the scheduled sync retries
            failed.append(f"{connection.name}: {outbound.rapidpro_error_text(exc)}")
            continue
        fetched += int(counts.get("messages", 0) or 0)
    if failed:
        messages.error(request, _("Could not fetch messages: %s") % "; ".join(failed))
    else:
        messages.success(
            request, _("Messages fetched (%(count)s new or changed).") % {"count": fetched}
        )
    return redirect("polls:inbox")


@member_required
@require_http_methods(["GET", "POST"])
def conversation(request: HttpRequest, pk: int) -> HttpResponse:
    membership = membership_of(request)
    contact = selectors.get_contact(membership, pk)
    form = ReplyForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        require_act(membership)
        if form.is_valid():
            try:
                sent = outbound.reply(
                    contact=contact, text=form.cleaned_data["text"], user=request.user
                )
            except outbound.OutboundError as exc:
                form.add_error("text", exc.message)
            else:
                if sent.status == Broadcast.Status.SENT:
                    messages.success(request, _("Your reply was sent."))
                else:
                    messages.error(request, _("RapidPro did not send the reply: %s") % sent.error)
                return redirect("polls:conversation", pk=contact.pk)
        status = 400
    context = {
        "contact": contact,
        "messages_list": reads.conversation(contact),
        "form": form,
        "can_act": selectors.can_act(membership),
    }
    return render(request, "polls/inbox/conversation.html", context, status=status)


@member_required
def message_log(request: HttpRequest) -> HttpResponse:
    membership = membership_of(request)
    broadcasts = outbound.visible_broadcasts(membership)
    page = Paginator(broadcasts, LOG_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "polls/inbox/message_log.html",
        {"page": page, "rows": list(page.object_list), "query": _query_without_page(request)},
    )
