"""Forms of the polls setup and indicator pages. They collect input; services validate
and write (a :class:`SetupError` comes back onto the field it names)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from closedloop.polls.models import (
    DataField,
    Indicator,
    Poll,
    Question,
    QuestionType,
    SameDayRule,
)
from closedloop.polls.services import MAX_INTERVAL, MIN_INTERVAL, SetupError


class BootstrapMixin:
    """Gives every widget its Bootstrap class, so templates just print the fields."""

    def style_widgets(self) -> None:
        for bound in self:  # type: ignore[attr-defined]
            widget = bound.field.widget
            if isinstance(widget, forms.CheckboxInput | forms.CheckboxSelectMultiple):
                css = "form-check-input"
            elif isinstance(widget, forms.Select | forms.SelectMultiple):
                css = "form-select"
            else:
                css = "form-control"
            if bound.errors:
                css += " is-invalid"
            widget.attrs["class"] = css

    def add_service_error(self, exc: SetupError) -> None:
        field = exc.field if exc.field in self.fields else None  # type: ignore[attr-defined]
        self.add_error(field, exc.message)  # type: ignore[attr-defined]


class ConnectionForm(BootstrapMixin, forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    host_url = forms.CharField(
        label=_("RapidPro address"),
        max_length=255,
        help_text=_("The server's address, e.g. https://rapidpro.io or https://textit.com."),
        widget=forms.TextInput(attrs={"dir": "ltr", "inputmode": "url", "placeholder": "https://"}),
    )
    token = forms.CharField(
        label=_("API token"),
        max_length=200,
        required=False,
        widget=forms.PasswordInput(
            render_value=False, attrs={"autocomplete": "new-password", "dir": "ltr"}
        ),
        help_text=_("Found in RapidPro under your workspace settings → API token."),
    )
    sync_interval_minutes = forms.IntegerField(
        label=_("Sync every (minutes)"), min_value=MIN_INTERVAL, max_value=MAX_INTERVAL
    )

    def __init__(self, *args: Any, editing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.editing = editing
        if editing:
            self.fields["token"].help_text = _(
                "A token is stored. Leave this empty to keep it, or type a new one to replace it."
            )
        else:
            self.fields["token"].required = True


class ConfirmNameForm(BootstrapMixin, forms.Form):
    confirm_name = forms.CharField(label=_("Type the name to confirm"), max_length=255)


class FetchRunsForm(BootstrapMixin, forms.Form):
    days = forms.IntegerField(label=_("Days back"), min_value=1, max_value=3660, initial=30)


class SettingsForm(BootstrapMixin, forms.Form):
    same_day_rule = forms.ChoiceField(
        label=_("Same-day answers"),
        choices=SameDayRule.choices,
        help_text=_(
            "When a contact answers a numeric question several times on one day, count the "
            "last answer or the sum of that day's answers."
        ),
    )
    inbox_days = forms.IntegerField(
        label=_("Inbox window (days)"),
        min_value=1,
        max_value=365,
        help_text=_("How far back messages are read from RapidPro."),
    )
    contact_fields = forms.MultipleChoiceField(
        label=_("Visible contact fields"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Shown on contact pages and offered as filters on poll pages."),
    )
    featured_indicator = forms.ModelChoiceField(
        label=_("Featured indicator"),
        queryset=Indicator.objects.none(),
        required=False,
        empty_label=_("(none)"),
        help_text=_("Shown on the polls home page."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices: dict[str, str] = {}
        for key, label in DataField.objects.order_by("label").values_list("key", "label"):
            choices.setdefault(key, f"{label} ({key})")
        visible = self.fields["contact_fields"]
        assert isinstance(visible, forms.MultipleChoiceField)
        visible.choices = list(choices.items())
        featured = self.fields["featured_indicator"]
        assert isinstance(featured, forms.ModelChoiceField)
        featured.queryset = Indicator.objects.order_by("name")

    def add_service_error(self, exc: SetupError) -> None:
        if exc.field == "visible_fields":
            exc.field = "contact_fields"
        super().add_service_error(exc)

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "same_day_rule": data["same_day_rule"],
            "inbox_days": data["inbox_days"],
            "visible_fields": list(data.get("contact_fields") or []),
            "featured_indicator": data.get("featured_indicator"),
        }


class QuestionChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Question) -> str:
        return obj.display_name


class PollChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Poll) -> str:
        return obj.display_name


def numeric_questions(poll_id: Any) -> Any:
    return Question.objects.filter(
        poll_id=poll_id, poll__is_active=True, type=QuestionType.NUMERIC, is_present=True
    ).order_by("order", "pk")


class IndicatorForm(BootstrapMixin, forms.Form):
    name = forms.CharField(label=_("Name"), max_length=255)
    start_date = forms.DateField(
        label=_("Start date"), widget=forms.DateInput(attrs={"type": "date"})
    )
    end_date = forms.DateField(label=_("End date"), widget=forms.DateInput(attrs={"type": "date"}))
    baseline_poll = PollChoiceField(label=_("Baseline poll"), queryset=Poll.objects.none())
    baseline_question = QuestionChoiceField(
        label=_("Baseline question"), queryset=Question.objects.none()
    )
    follow_up_poll = PollChoiceField(label=_("Follow-up poll"), queryset=Poll.objects.none())
    follow_up_question = QuestionChoiceField(
        label=_("Follow-up question"), queryset=Question.objects.none()
    )
    y_axis_title = forms.CharField(label=_("Y-axis title"), max_length=100, required=False)
    goal = forms.FloatField(
        label=_("Goal"),
        required=False,
        help_text=_("Optional: drawn as a line instead of the baseline."),
    )

    def __init__(self, *args: Any, indicator: Indicator | None = None, **kwargs: Any) -> None:
        if indicator is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "name": indicator.name,
                "start_date": indicator.start_date,
                "end_date": indicator.end_date,
                "baseline_poll": indicator.baseline_question.poll_id,
                "baseline_question": indicator.baseline_question_id,
                "follow_up_poll": indicator.follow_up_question.poll_id,
                "follow_up_question": indicator.follow_up_question_id,
                "y_axis_title": indicator.y_axis_title,
                "goal": indicator.goal,
            }
        super().__init__(*args, **kwargs)
        polls = Poll.objects.filter(is_active=True).order_by("rapidpro_name")
        for prefix in ("baseline", "follow_up"):
            poll_field = self.fields[f"{prefix}_poll"]
            assert isinstance(poll_field, forms.ModelChoiceField)
            poll_field.queryset = polls
            poll_field.widget.attrs.update(
                {
                    "hx-get": reverse("polls:indicator_questions"),
                    "hx-trigger": "change",
                    "hx-target": f"#id_{prefix}_question",
                    "hx-include": "this",
                }
            )
            poll_id = (
                self.data.get(f"{prefix}_poll")
                if self.is_bound
                else self.initial.get(f"{prefix}_poll")
            )
            question_field = self.fields[f"{prefix}_question"]
            assert isinstance(question_field, forms.ModelChoiceField)
            question_field.queryset = (
                numeric_questions(poll_id)
                if str(poll_id or "").isdigit()
                else Question.objects.none()
            )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start_date"), data.get("end_date")
        if start and end and start > end:
            self.add_error("end_date", _("The end date must not be before the start date."))
        return data

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "name": data["name"],
            "start_date": data["start_date"],
            "end_date": data["end_date"],
            "baseline_question": data["baseline_question"],
            "follow_up_question": data["follow_up_question"],
            "y_axis_title": data.get("y_axis_title") or "",
            "goal": data.get("goal"),
        }


class SampleDataForm(BootstrapMixin, forms.Form):
    minimum = forms.IntegerField(label=_("Minimum"), initial=0)
    maximum = forms.IntegerField(label=_("Maximum"), initial=10)
    contact_count = forms.IntegerField(
        label=_("Number of contacts"),
        min_value=1,
        max_value=5000,
        required=False,
        initial=20,
        help_text=_("Picked at random, unless you choose contacts below."),
    )
    contacts = forms.ModelMultipleChoiceField(
        label=_("Or these contacts"),
        queryset=Question.objects.none(),
        required=False,
        widget=forms.SelectMultiple(attrs={"size": 5}),
    )
    days = forms.IntegerField(label=_("Follow-up days"), min_value=1, max_value=366, initial=7)

    def __init__(self, *args: Any, contacts: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["contacts"]
        assert isinstance(field, forms.ModelMultipleChoiceField)
        if contacts is not None:
            field.queryset = contacts

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        low, high = data.get("minimum"), data.get("maximum")
        if low is not None and high is not None and low > high:
            self.add_error("maximum", _("The maximum must not be below the minimum."))
        if not data.get("contacts") and not data.get("contact_count"):
            self.add_error("contact_count", _("Give a number of contacts or choose some."))
        return data

    def chosen_contacts(self) -> Any:
        data = self.cleaned_data
        if data.get("contacts"):
            return list(data["contacts"])
        return int(data["contact_count"])
