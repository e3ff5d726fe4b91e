"""Forms of the registry pages. They validate input; the services do the writing."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from closedloop.registry.geometry import GeometryError, prepare_geometry, validate_point
from closedloop.registry.models import OrgUnit, ValidationStatus
from closedloop.registry.selectors import unit_types

#: How many parent levels the import mapping form offers.
IMPORT_LEVELS = 6

DELIMITER_CHOICES = [
    ("", _("Detect automatically")),
    (",", _("Comma (,)")),
    (";", _("Semicolon (;)")),
    ("\\t", _("Tab")),
    ("|", _("Vertical bar (|)")),
]


class BootstrapForm(forms.Form):
    """Adds Bootstrap classes to every widget."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.style_widgets()

    def style_widgets(self) -> None:
        for field in self.fields.values():
            widget = field.widget
            if isinstance(widget, forms.CheckboxInput | forms.HiddenInput):
                continue
            css = "form-select" if isinstance(widget, forms.Select) else "form-control"
            existing = widget.attrs.get("class", "")
            if css not in existing:
                widget.attrs["class"] = f"{existing} {css}".strip()


class OrgUnitForm(BootstrapForm):
    """Create or edit one org unit. ``cleaned_data`` maps onto the service's fields."""

    name = forms.CharField(label=_("Name"), max_length=255)
    type = forms.ModelChoiceField(
        label=_("Type"),
        queryset=None,
        required=False,
        empty_label=_("(no type)"),
    )
    code = forms.CharField(label=_("Code"), max_length=100, required=False)
    ref = forms.CharField(label=_("External reference"), max_length=200, required=False)
    validation_status = forms.ChoiceField(
        label=_("Validation status"),
        choices=ValidationStatus.choices,
        initial=ValidationStatus.NEW,
    )
    latitude = forms.FloatField(label=_("Latitude"), required=False, min_value=-90, max_value=90)
    longitude = forms.FloatField(
        label=_("Longitude"), required=False, min_value=-180, max_value=180
    )
    opening_date = forms.DateField(
        label=_("Opening date"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    closing_date = forms.DateField(
        label=_("Closing date"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    geometry = forms.CharField(
        label=_("Geometry (GeoJSON)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "class": "font-monospace"}),
        help_text=_("Optional. A GeoJSON Polygon or MultiPolygon in longitude/latitude."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["type"].queryset = unit_types()  # type: ignore[attr-defined]

    @classmethod
    def initial_for(cls, unit: OrgUnit) -> dict[str, Any]:
        initial = {name: getattr(unit, name) for name in cls.base_fields if name != "geometry"}
        initial["geometry"] = json.dumps(unit.geometry) if unit.geometry else ""
        return initial

    def clean_geometry(self) -> dict[str, Any] | None:
        text = (self.cleaned_data.get("geometry") or "").strip()
        if not text:
            return None
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(
                _("This is not valid JSON (%(err)s).") % {"err": exc}
            ) from None
        if isinstance(value, dict) and value.get("type") == "Feature":
            value = value.get("geometry")
        if not isinstance(value, dict):
            raise forms.ValidationError(_("Give a GeoJSON geometry object."))
        try:
            prepare_geometry(value)
        except GeometryError as exc:
            raise forms.ValidationError(
                _("The geometry is not usable: %(err)s.") % {"err": exc}
            ) from None
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        lat, lon = data.get("latitude"), data.get("longitude")
        if "latitude" in self.errors or "longitude" in self.errors:
            return data
        try:
            validate_point(lat, lon)
        except GeometryError:
            raise forms.ValidationError(
                _("Give both latitude and longitude, or leave both empty."), code="point"
            ) from None
        opening, closing = data.get("opening_date"), data.get("closing_date")
        if opening and closing and closing < opening:
            self.add_error("closing_date", _("The closing date is before the opening date."))
        return data

    def service_fields(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data.pop("name")
        data.pop("type")
        return data


class MoveForm(BootstrapForm):
    new_parent = forms.IntegerField(required=False, widget=forms.HiddenInput)
    make_root = forms.BooleanField(label=_("Make it a top-level unit (no parent)"), required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not data.get("new_parent") and not data.get("make_root"):
            raise forms.ValidationError(_("Choose the new parent from the search results."))
        return data


class SearchForm(BootstrapForm):
    q = forms.CharField(label=_("Search"), required=False, max_length=200)
    type = forms.ModelChoiceField(
        label=_("Type"),
        queryset=None,
        required=False,
        empty_label=_("All types"),
    )
    status = forms.ChoiceField(
        label=_("Status"),
        required=False,
        choices=[("", _("All statuses")), *ValidationStatus.choices],
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["type"].queryset = unit_types()  # type: ignore[attr-defined]


class UploadForm(BootstrapForm):
    file = forms.FileField(
        label=_("File (CSV or Excel .xlsx)"),
        widget=forms.ClearableFileInput(
            attrs={"accept": ".csv,.txt,.tsv,.xlsx", "data-testid": "import-file"}
        ),
    )
    delimiter = forms.ChoiceField(label=_("Delimiter"), choices=DELIMITER_CHOICES, required=False)
    encoding = forms.CharField(
        label=_("Encoding"),
        required=False,
        max_length=40,
        help_text=_("Leave empty to detect it (UTF-8, UTF-16, Windows-1252)."),
    )
    sheet = forms.CharField(
        label=_("Sheet"),
        required=False,
        max_length=100,
        help_text=_("Excel only. Leave empty to read the first sheet."),
    )

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        limit = settings.DATAOPS_MAX_UPLOAD_SIZE
        if upload.size > limit:
            raise forms.ValidationError(
                _("The file is %(size)s bytes; the largest accepted is %(max)s bytes.")
                % {"size": upload.size, "max": limit}
            )
        if upload.size == 0:
            raise forms.ValidationError(_("The file is empty."))
        return upload


class MappingForm(BootstrapForm):
    """Which column holds what. Parent levels are numbered fields so their order is explicit."""

    name = forms.ChoiceField(label=_("Name column"))
    ref = forms.ChoiceField(label=_("External reference column"), required=False)
    code = forms.ChoiceField(label=_("Code column"), required=False)
    lat = forms.ChoiceField(label=_("Latitude column"), required=False)
    lon = forms.ChoiceField(label=_("Longitude column"), required=False)
    leaf_type = forms.CharField(
        label=_("Type of the units in the name column"), max_length=100, required=False
    )
    only_valid = forms.BooleanField(label=_("Import only rows without errors"), required=False)
    status = forms.ChoiceField(
        label=_("Validation status of new units"),
        choices=ValidationStatus.choices,
        initial=ValidationStatus.NEW,
    )
    source = forms.CharField(label=_("Data source"), max_length=200, required=False)
    version = forms.IntegerField(label=_("Version number"), min_value=1, required=False)

    def __init__(self, *args: Any, columns: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        optional = [("", _("(none)")), *[(c, c) for c in columns]]
        self.fields["name"].choices = [(c, c) for c in columns]  # type: ignore[attr-defined]
        for key in ("ref", "code", "lat", "lon"):
            self.fields[key].choices = optional  # type: ignore[attr-defined]
        for level in range(1, IMPORT_LEVELS + 1):
            self.fields[f"parent_{level}"] = forms.ChoiceField(
                label=_("Level %(n)d column") % {"n": level},
                choices=optional,
                required=False,
                widget=forms.Select(attrs={"data-testid": f"map-parent-{level}"}),
            )
            self.fields[f"type_{level}"] = forms.CharField(
                label=_("Level %(n)d type") % {"n": level}, max_length=100, required=False
            )
        self.fields["name"].widget.attrs["data-testid"] = "map-name"
        self.style_widgets()

    def level_rows(self) -> list[tuple[Any, Any]]:
        return [(self[f"parent_{n}"], self[f"type_{n}"]) for n in range(1, IMPORT_LEVELS + 1)]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        parents: list[str] = []
        types: list[str] = []
        gap = False
        for level in range(1, IMPORT_LEVELS + 1):
            column = data.get(f"parent_{level}") or ""
            if not column:
                gap = True
                continue
            if gap:
                self.add_error(
                    f"parent_{level}",
                    _("Fill the levels in order: level %(n)d is set but an earlier level is empty.")
                    % {"n": level},
                )
            parents.append(column)
            types.append((data.get(f"type_{level}") or "").strip())
        used = [*parents, data.get("name")]
        if len(set(used)) != len(used):
            raise forms.ValidationError(
                _("A column is used twice among the parent levels and the name column.")
            )
        if bool(data.get("lat")) != bool(data.get("lon")):
            raise forms.ValidationError(
                _("Choose both the latitude and the longitude column, or neither.")
            )
        data["parents"] = parents
        data["type_names"] = types
        return data
