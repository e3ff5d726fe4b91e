"""Forms of the poll dashboards: start a poll, message a poll run, fetch older runs."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from closedloop.polls.models import Audience, Connection, ContactGroup, Poll

#: RapidPro rejects longer broadcast texts
MESSAGE_MAX_LENGTH = 640
MAX_FETCH_DAYS = 3650


class PanelChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Any) -> str:
        unit = getattr(obj, "org_unit", None)
        return f"{obj.name} ({unit.name})" if unit is not None else str(obj.name)


class StartPollForm(forms.Form):
    poll = forms.ModelChoiceField(
        label=_("Poll"),
        queryset=Poll.objects.none(),
        empty_label=_("Choose a poll"),
        widget=forms.Select(attrs={"class": "form-select"}),
        error_messages={"invalid_choice": _("Choose one of the active polls.")},
    )
    panel = PanelChoiceField(
        label=_("Panel"),
        queryset=ContactGroup.objects.none(),
        empty_label=_("Choose a panel"),
        widget=forms.Select(attrs={"class": "form-select"}),
        error_messages={"invalid_choice": _("Choose one of your panels.")},
    )
    propagate = forms.BooleanField(
        label=_("Include sub-panels (propagate)"),
        required=False,
        widget=forms.CheckboxInput(attrs={"class": "form-check-input"}),
        help_text=_("Also start the poll for every panel below the chosen one."),
    )

    def __init__(
        self,
        *args: Any,
        polls: QuerySet[Poll],
        panels: QuerySet[ContactGroup],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["poll"].queryset = polls  # type: ignore[attr-defined]
        self.fields["panel"].queryset = panels  # type: ignore[attr-defined]


class MessageForm(forms.Form):
    audience = forms.ChoiceField(
        label=_("Send to"),
        choices=[
            (Audience.ALL, _("All participants")),
            (Audience.RESPONDENTS, _("Respondents (answered at least one question)")),
            (Audience.NON_RESPONDENTS, _("Non-respondents (did not answer)")),
        ],
        initial=Audience.NON_RESPONDENTS,
        widget=forms.RadioSelect(attrs={"class": "form-check-input"}),
    )
    text = forms.CharField(
        label=_("Message"),
        max_length=MESSAGE_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 4}),
    )

    def clean_text(self) -> str:
        text = str(self.cleaned_data["text"]).strip()
        if not text:
            raise forms.ValidationError(_("Write the message to send."))
        return text


class FetchRunsForm(forms.Form):
    connection = forms.ModelChoiceField(
        label=_("Connection"),
        queryset=Connection.objects.none(),
        empty_label=None,
        widget=forms.Select(attrs={"class": "form-select"}),
        error_messages={"invalid_choice": _("Choose one of the account's connections.")},
    )
    days = forms.IntegerField(
        label=_("Days back"),
        min_value=1,
        max_value=MAX_FETCH_DAYS,
        initial=30,
        widget=forms.NumberInput(attrs={"class": "form-control"}),
        help_text=_("Fetch the runs of this many past days again (older runs included)."),
    )

    def __init__(self, *args: Any, connections: QuerySet[Connection], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["connection"].queryset = connections  # type: ignore[attr-defined]
