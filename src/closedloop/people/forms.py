"""Forms of the people pages. They collect input; the services validate and write."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from closedloop.accounts.models import Membership
from closedloop.people.importer import UNIT_MATCHES
from closedloop.people.models import Cohort, CustomField, Identifier, Person
from closedloop.people.services import PeopleError
from closedloop.registry.models import OrgUnit
from closedloop.registry.selectors import visible_units

FIELD_PREFIX = "cf_"


class UnitChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: OrgUnit) -> str:
        return "\u2003" * max(0, obj.depth - 1) + obj.name


class BootstrapMixin:
    """Gives every widget its Bootstrap class, so templates just print the fields."""

    def style_widgets(self) -> None:
        for bound in self:  # type: ignore[attr-defined]
            widget = bound.field.widget
            if isinstance(widget, forms.CheckboxInput | forms.CheckboxSelectMultiple):
                css = "form-check-input"
            elif isinstance(widget, forms.Select):
                css = "form-select"
            else:
                css = "form-control"
            if bound.errors:
                css += " is-invalid"
            widget.attrs["class"] = css


def _lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


class PersonForm(BootstrapMixin, forms.Form):
    """Create or edit a person; the org-unit choices are the units the user may see."""

    name = forms.CharField(label=_("Name"), max_length=255)
    org_unit = UnitChoiceField(label=_("Org unit"), queryset=OrgUnit.objects.none(), required=False)
    language = forms.CharField(
        label=_("Language"),
        max_length=10,
        required=False,
        help_text=_("A language code such as en, fr or ar."),
    )
    emails = forms.CharField(
        label=_("Email addresses"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("One per line."),
    )
    phones = forms.CharField(
        label=_("Phone numbers"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("One per line, in international form: +250788123456."),
    )
    external_ids = forms.CharField(
        label=_("External ids"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("One per line, as system:id, e.g. moodle:1234."),
    )
    cohorts: forms.ModelMultipleChoiceField = forms.ModelMultipleChoiceField(
        label=_("Cohorts"),
        queryset=Cohort.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    is_active = forms.BooleanField(label=_("Active"), required=False, initial=True)

    def __init__(
        self, *args: Any, membership: Membership, person: Person | None = None, **kwargs: Any
    ) -> None:
        if person is not None and "initial" not in kwargs:
            kwargs["initial"] = self.initial_for(person)
        super().__init__(*args, **kwargs)
        self.membership = membership
        unit_field = self.fields["org_unit"]
        assert isinstance(unit_field, UnitChoiceField)
        unit_field.queryset = visible_units(membership).order_by("path")
        unit_field.required = self._scoped
        cohort_field = self.fields["cohorts"]
        assert isinstance(cohort_field, forms.ModelMultipleChoiceField)
        cohort_field.queryset = Cohort.objects.all()
        self.custom_fields = list(CustomField.objects.all())
        for definition in self.custom_fields:
            self.fields[FIELD_PREFIX + definition.key] = _custom_form_field(definition)

    @property
    def _scoped(self) -> bool:
        from closedloop.registry.selectors import scope_paths

        return scope_paths(self.membership) is not None

    @staticmethod
    def initial_for(person: Person) -> dict[str, Any]:
        identifiers = list(person.identifiers.all())

        def values(kind: str) -> str:
            return "\n".join(
                (f"{i.system}:{i.value}" if i.system else i.value)
                for i in identifiers
                if i.kind == kind
            )

        initial: dict[str, Any] = {
            "name": person.name,
            "org_unit": person.org_unit_id,
            "language": person.language,
            "emails": values(Identifier.Kind.EMAIL),
            "phones": values(Identifier.Kind.PHONE),
            "external_ids": values(Identifier.Kind.EXTERNAL),
            "cohorts": [c.pk for c in person.cohorts.all()],
            "is_active": person.is_active,
        }
        for key, value in (person.fields or {}).items():
            initial[FIELD_PREFIX + key] = value
        return initial

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        fields = {
            d.key: data.get(FIELD_PREFIX + d.key)
            for d in self.custom_fields
            if data.get(FIELD_PREFIX + d.key) not in (None, "")
        }
        return {
            "name": data["name"],
            "org_unit": data["org_unit"],
            "language": data["language"],
            "emails": _lines(data["emails"]),
            "phones": _lines(data["phones"]),
            "external_ids": _lines(data["external_ids"]),
            "cohorts": list(data["cohorts"]),
            "fields": fields,
            "is_active": data["is_active"],
        }

    def add_service_error(self, error: PeopleError) -> None:
        name = error.field or ""
        if name.startswith("field:"):
            name = FIELD_PREFIX + name.removeprefix("field:")
        self.add_error(name if name in self.fields else None, error.message)


def _custom_form_field(definition: CustomField) -> forms.Field:
    label = definition.label
    if definition.type == CustomField.Type.NUMBER:
        return forms.FloatField(label=label, required=False)
    if definition.type == CustomField.Type.DATE:
        return forms.DateField(
            label=label, required=False, widget=forms.DateInput(attrs={"type": "date"})
        )
    if definition.type == CustomField.Type.BOOLEAN:
        return forms.NullBooleanField(label=label, required=False)
    return forms.CharField(label=label, required=False, max_length=1000)


class CohortForm(BootstrapMixin, forms.Form):
    name = forms.CharField(label=_("Name"), max_length=200)
    description = forms.CharField(
        label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )


class CustomFieldForm(BootstrapMixin, forms.Form):
    key = forms.CharField(
        label=_("Key"),
        max_length=64,
        help_text=_("Lower-case letters, digits and underscores, e.g. school_year."),
    )
    label = forms.CharField(label=_("Label"), max_length=200)
    type = forms.ChoiceField(label=_("Type"), choices=CustomField.Type.choices)


class UploadForm(BootstrapMixin, forms.Form):
    file = forms.FileField(label=_("CSV or Excel file"))

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        limit = settings.DATAOPS_MAX_UPLOAD_SIZE
        if upload.size > limit:
            raise forms.ValidationError(
                _("The file is %(size)s MB; the largest accepted is %(max)s MB.")
                % {"size": upload.size // 1_000_000, "max": limit // 1_000_000}
            )
        if not upload.name.lower().endswith((".csv", ".txt", ".tsv", ".xlsx")):
            raise forms.ValidationError(_("Upload a .csv, .tsv, .txt or .xlsx file."))
        return upload


class MappingForm(BootstrapMixin, forms.Form):
    """Which column holds what; built from the uploaded file's header."""

    name_column = forms.ChoiceField(label=_("Name"))
    email_column = forms.ChoiceField(label=_("Email"), required=False)
    phone_column = forms.ChoiceField(label=_("Phone"), required=False)
    external_column = forms.ChoiceField(label=_("External id"), required=False)
    external_system = forms.CharField(
        label=_("External id system"),
        required=False,
        max_length=60,
        help_text=_("e.g. moodle, rapidpro"),
    )
    unit_column = forms.ChoiceField(label=_("Org unit"), required=False)
    unit_match = forms.ChoiceField(
        label=_("Find the org unit by"),
        choices=[
            (m, label)
            for m, label in zip(
                UNIT_MATCHES, (_("code"), _("external reference"), _("id")), strict=True
            )
        ],
    )
    cohorts_column = forms.ChoiceField(
        label=_("Cohorts"), required=False, help_text=_("Several cohorts separated by ; or ,")
    )
    language_column = forms.ChoiceField(label=_("Language"), required=False)
    only_valid = forms.BooleanField(
        label=_("Import the valid rows even if some rows have problems"), required=False
    )

    ROLE_FIELDS = (
        "name_column",
        "email_column",
        "phone_column",
        "external_column",
        "unit_column",
        "cohorts_column",
        "language_column",
    )

    def __init__(self, *args: Any, columns: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.columns = columns
        choices = [("", _("— not in the file —"))] + [(c, c) for c in columns]
        lowered = {c.lower(): c for c in columns}
        guesses = {
            "name_column": ("name", "full name", "full_name"),
            "email_column": ("email", "e-mail"),
            "phone_column": ("phone", "mobile", "tel"),
            "external_column": ("external_id", "external id", "id"),
            "unit_column": ("org_unit", "org unit", "school", "code", "unit"),
            "cohorts_column": ("cohorts", "cohort"),
            "language_column": ("language", "lang"),
        }
        for name in self.ROLE_FIELDS:
            self.fields[name].choices = choices  # type: ignore[attr-defined]
            guess = next((lowered[g] for g in guesses[name] if g in lowered), "")
            self.fields[name].initial = guess
        field_choices = [("", _("— ignore —"))] + [
            (f"field:{f.key}", f.label) for f in CustomField.objects.all()
        ]
        keys = {f.key for f in CustomField.objects.all()}
        self.extra_names: list[tuple[str, str]] = []
        for index, column in enumerate(columns):
            name = f"col_{index}"
            self.fields[name] = forms.ChoiceField(
                label=column,
                choices=field_choices,
                required=False,
                initial=f"field:{column.lower()}" if column.lower() in keys else "",
            )
            self.extra_names.append((name, column))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        used = [data.get(n) for n in self.ROLE_FIELDS if data.get(n)]
        if len(used) != len(set(used)):
            raise forms.ValidationError(_("Each column can have only one role."))
        return data

    def options(self) -> dict[str, Any]:
        data = self.cleaned_data
        roles = {n: data.get(n) or "" for n in self.ROLE_FIELDS}
        field_columns = {
            column: data[name]
            for name, column in self.extra_names
            if data.get(name) and column not in roles.values()
        }
        return {
            **roles,
            "external_system": data.get("external_system", ""),
            "unit_match": data["unit_match"],
            "field_columns": field_columns,
            "auto_map": False,
            "only_valid": bool(data.get("only_valid")),
        }
