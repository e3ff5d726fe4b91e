"""Forms of the upload / merge wizard (step 1 per source kind, step 3) and of the SQL
connection pages. Step 2 (one row of inputs per column) is read by the view."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from closedloop.core.tablesource import table_sources
from closedloop.feedback.dataops.sources import max_upload_size
from closedloop.feedback.dataops.sqlconn import connections_for
from closedloop.feedback.models import SQLConnection, SQLEngine

SOURCE_KINDS = ("csv", "xlsx", "json", "sql", "source", "s3", "gsheet")
DELIMITERS = [("", _("detect")), (",", ","), (";", ";"), ("\\t", _("tab")), ("|", "|")]
ENCODINGS = [
    ("", _("detect")),
    ("utf-8", "UTF-8"),
    ("utf-16", "UTF-16"),
    ("cp1252", "Windows-1252"),
    ("latin-1", "Latin-1 (ISO-8859-1)"),
]
HOW_CHOICES = [
    ("outer", _("Outer: keep every row of both (new keys are added)")),
    ("inner", _("Inner: keep only the rows whose key is in both")),
    ("left", _("Left: keep the table's rows; ignore new keys")),
    ("right", _("Right: keep only the new data's rows (the others are dropped)")),
]


class StyledForm(forms.Form):
    def style(self) -> StyledForm:
        for field in self.fields.values():
            widget = field.widget
            if isinstance(widget, (forms.CheckboxInput, forms.RadioSelect)):
                widget.attrs.setdefault("class", "form-check-input")
            elif isinstance(widget, forms.Select):
                widget.attrs.setdefault("class", "form-select")
            else:
                widget.attrs.setdefault("class", "form-control")
        return self


class FileSourceForm(StyledForm):
    file = forms.FileField(label=_("File"))

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > max_upload_size():
            raise forms.ValidationError(
                _("The file is %(size).1f MB; the largest accepted is %(max).1f MB.")
                % {"size": upload.size / 1e6, "max": max_upload_size() / 1e6}
            )
        return upload


class CSVForm(FileSourceForm):
    skip_top = forms.IntegerField(label=_("Lines to skip at the top"), initial=0, required=False)
    skip_bottom = forms.IntegerField(
        label=_("Lines to skip at the bottom"), initial=0, required=False
    )
    delimiter = forms.ChoiceField(label=_("Delimiter"), choices=DELIMITERS, required=False)
    encoding = forms.ChoiceField(label=_("Encoding"), choices=ENCODINGS, required=False)

    def clean_skip_top(self) -> int:
        return self._not_negative("skip_top")

    def clean_skip_bottom(self) -> int:
        return self._not_negative("skip_bottom")

    def _not_negative(self, name: str) -> int:
        value = self.cleaned_data.get(name) or 0
        if value < 0:
            raise forms.ValidationError(_("Enter 0 or a positive number of lines."))
        return int(value)


class ExcelForm(FileSourceForm):
    sheet = forms.CharField(
        label=_("Sheet"),
        required=False,
        max_length=200,
        help_text=_("Leave empty for the first sheet."),
    )


class JSONForm(FileSourceForm):
    pass


class SQLSourceForm(StyledForm):
    connection = forms.ModelChoiceField(
        label=_("Connection"), queryset=SQLConnection.objects.none()
    )
    password = forms.CharField(
        label=_("Password"),
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=_("Needed only when the connection does not store one."),
    )
    table = forms.CharField(label=_("Table"), required=False, max_length=200,
                            help_text=_("Leave empty to use the connection's table or query."))  # fmt: skip
    query = forms.CharField(
        label=_("Query"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "dir": "ltr"}),
        help_text=_("One SELECT; replaces the connection's table."),
    )

    def __init__(self, *args: Any, account: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["connection"].queryset = connections_for(account, enabled_only=True)  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        connection = data.get("connection")
        if (
            connection is not None
            and not connection.password_encrypted
            and not data.get("password")
        ) and connection.engine != "sqlite":
            self.add_error("password", _("This connection does not store its password: enter it."))
        return data


class TableSourceForm(StyledForm):
    source = forms.ChoiceField(label=_("Table source"))
    active_only = forms.BooleanField(label=_("Only active records"), required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["source"].choices = [(s.key, str(s.title)) for s in table_sources.all()]  # type: ignore[attr-defined]


class S3Form(StyledForm):
    bucket = forms.CharField(label=_("Bucket"), max_length=255)
    key = forms.CharField(
        label=_("Object key"), max_length=1024, help_text=_("e.g. exports/grades.csv")
    )
    region = forms.CharField(label=_("Region"), max_length=64, required=False)
    access_key = forms.CharField(label=_("Access key"), max_length=200, required=False)
    secret_key = forms.CharField(
        label=_("Secret key"), max_length=200, required=False, widget=forms.PasswordInput()
    )
    kind = forms.ChoiceField(
        label=_("Format"),
        choices=[
            ("", _("from the key's extension")),
            ("csv", "CSV"),
            ("xlsx", "Excel"),
            ("json", "JSON"),
        ],
        required=False,
    )


class SheetForm(StyledForm):
    url = forms.URLField(
        label=_("Google Sheet link"),
        max_length=1000,
        assume_scheme="https",
        help_text=_("Share the sheet as “anyone with the link can view”, then paste its link."),
        widget=forms.URLInput(attrs={"dir": "ltr"}),
    )


FORMS: dict[str, type[StyledForm]] = {
    "csv": CSVForm,
    "xlsx": ExcelForm,
    "json": JSONForm,
    "sql": SQLSourceForm,
    "source": TableSourceForm,
    "s3": S3Form,
    "gsheet": SheetForm,
}


class MergeOptionsForm(StyledForm):
    left_on = forms.ChoiceField(label=_("Key in the table"))
    right_on = forms.ChoiceField(label=_("Key in the new data"))
    how = forms.ChoiceField(
        label=_("Merge method"), choices=HOW_CHOICES, widget=forms.RadioSelect, initial="outer"
    )
    clear_with_empty = forms.BooleanField(
        label=_("Empty values clear cells"),
        required=False,
        help_text=_("Off (as OnTask): an empty value in the new data never erases a value."),
    )

    def __init__(
        self, *args: Any, table_keys: list[str], data_keys: list[str], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["left_on"].choices = [(k, k) for k in table_keys]  # type: ignore[attr-defined]
        self.fields["right_on"].choices = [(k, k) for k in data_keys]  # type: ignore[attr-defined]


class SQLConnectionForm(StyledForm):
    name = forms.CharField(label=_("Name"), max_length=200)
    description = forms.CharField(
        label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    engine = forms.ChoiceField(label=_("Engine"), choices=SQLEngine.choices)
    host = forms.CharField(label=_("Host"), required=False, max_length=255)
    port = forms.IntegerField(label=_("Port"), required=False, min_value=1, max_value=65535)
    database = forms.CharField(label=_("Database"), max_length=500,
                               help_text=_("For SQLite: the path of the file on the server."))  # fmt: skip
    user = forms.CharField(label=_("User"), required=False, max_length=200)
    password = forms.CharField(
        label=_("Password"),
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_(
            "Stored encrypted and never shown. Leave empty to keep the stored one, or to have it asked at each use."
        ),
    )
    clear_password = forms.BooleanField(label=_("Forget the stored password"), required=False)
    db_table = forms.CharField(label=_("Table"), required=False, max_length=200)
    query = forms.CharField(label=_("Query"), required=False, widget=forms.Textarea(attrs={"rows": 3, "dir": "ltr"}),
                            help_text=_("One SELECT; used instead of the table when given."))  # fmt: skip
    enabled = forms.BooleanField(label=_("Enabled"), required=False, initial=True)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("db_table") and not (data.get("query") or "").strip():
            self.add_error("db_table", _("Give a table or a query."))
        return data

    def service_fields(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data.pop("password", None)
        data.pop("clear_password", None)
        return data
