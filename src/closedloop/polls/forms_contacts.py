"""Forms of the contacts and inbox pages."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from closedloop.accounts.models import Membership
from closedloop.polls import selectors
from closedloop.polls.models import Contact, ContactGroup, DataField
from closedloop.polls.selectors_contacts import cohort_groups

FIELD_PREFIX = "field_"
MAX_TEXT = 640


class PanelChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: ContactGroup) -> str:
        unit = obj.org_unit
        return (
            f"{obj.name} ({unit.name})" if unit is not None and unit.name != obj.name else obj.name
        )


def _style(form: forms.Form) -> None:
    for bound in form:
        widget = bound.field.widget
        if isinstance(widget, (forms.CheckboxSelectMultiple, forms.CheckboxInput)):
            continue
        css = "form-select" if isinstance(widget, forms.Select) else "form-control"
        if bound.errors:
            css += " is-invalid"
        widget.attrs["class"] = css


class ContactForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=255)
    phones = forms.CharField(
        label=_("Phone numbers"),
        widget=forms.Textarea(attrs={"rows": 2, "dir": "ltr"}),
        help_text=_("One per line, in international form, e.g. +250788123456."),
    )
    panel = PanelChoiceField(label=_("Panel"), queryset=ContactGroup.objects.none())
    cohorts = forms.ModelMultipleChoiceField(
        label=_("Cohorts"),
        queryset=ContactGroup.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple(attrs={"class": "form-check-input"}),
    )
    language = forms.CharField(
        label=_("Language"),
        max_length=3,
        required=False,
        help_text=_("Three-letter code used by RapidPro, e.g. eng, fra, ara."),
    )

    def __init__(
        self,
        data: Any = None,
        *,
        membership: Membership,
        fields: list[DataField],
        contact: Contact | None = None,
    ) -> None:
        initial: dict[str, Any] = {}
        if contact is not None:
            initial = {
                "name": contact.name,
                "phones": "\n".join(u[4:] for u in contact.urns if str(u).startswith("tel:")),
                "panel": contact.panel_id,
                "cohorts": list(
                    cohort_groups()
                    .filter(uuid__in=contact.group_uuids)
                    .values_list("pk", flat=True)
                ),
                "language": contact.language,
            }
            for field in fields:
                initial[FIELD_PREFIX + field.key] = (contact.fields or {}).get(field.key, "")
        super().__init__(data, initial=initial)
        panels = selectors.visible_panels(membership).order_by("name")
        if contact is not None:
            panels = panels.filter(connection_id=contact.connection_id)
        self.fields["panel"].queryset = panels  # type: ignore[attr-defined]
        self.fields["cohorts"].queryset = cohort_groups()  # type: ignore[attr-defined]
        self.data_fields = fields
        for field in fields:
            self.fields[FIELD_PREFIX + field.key] = forms.CharField(
                label=field.label, required=False, max_length=640
            )
        _style(self)

    def clean_phones(self) -> list[str]:
        lines = re.split(r"[\n,;]+", self.cleaned_data.get("phones") or "")
        phones = [line.strip() for line in lines if line.strip()]
        if not phones:
            raise forms.ValidationError(_("Enter at least one phone number."))
        return phones

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        panel = cleaned.get("panel")
        cohorts = cleaned.get("cohorts") or []
        if panel is not None and any(g.connection_id != panel.connection_id for g in cohorts):
            self.add_error("cohorts", _("Choose cohorts of the panel's RapidPro connection."))
        return cleaned

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "name": data["name"],
            "phones": data["phones"],
            "panel": data["panel"],
            "cohorts": list(data.get("cohorts") or []),
            "language": data.get("language") or "",
            "fields": {f.key: data.get(FIELD_PREFIX + f.key, "") for f in self.data_fields},
        }

    def field_rows(self) -> list[forms.BoundField]:
        return [self[FIELD_PREFIX + f.key] for f in self.data_fields]

    def add_service_error(self, message: str, field: str | None) -> None:
        self.add_error(field if field in self.fields else None, message)
        _style(self)


class ReplyForm(forms.Form):
    text = forms.CharField(
        label=_("Reply"),
        max_length=MAX_TEXT,
        widget=forms.Textarea(attrs={"rows": 3, "class": "form-control"}),
    )
