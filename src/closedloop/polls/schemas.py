"""Schemas of the polls API (read-only views of polls, runs, charts and indicators)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ninja import Schema
from pydantic import Field

from closedloop.api.schemas import Ref


class PollOut(Schema):
    id: int
    name: str
    rapidpro_name: str
    flow_uuid: str
    connection: Ref
    is_present: bool = Field(description="False when the flow vanished from RapidPro.")
    question_count: int = Field(description="Visible questions.")
    pollrun_count: int = Field(description="Poll runs the caller can see.")
    last_conducted: dt.date | None


class QuestionOut(Schema):
    id: int
    poll: Ref
    name: str
    rapidpro_name: str
    result_key: str
    type: str = Field(description="open, categorical or numeric.")
    categories: list[str]
    rules: list[dict[str, Any]] = Field(
        description='Numeric rules: [{"category", "test", "arguments"}], "Other" excluded.'
    )
    order: int


class PollDetailOut(PollOut):
    questions: list[QuestionOut]


class PollRunOut(Schema):
    id: int
    poll: Ref
    type: str = Field(description="universal, regional or propagated.")
    date: dt.date = Field(description="The account-local day.")
    conducted_on: dt.datetime
    panel: Ref | None
    org_unit: Ref | None
    participants: int = Field(description="Active responses (empty + partial + complete).")
    complete: int
    partial: int


class PollRunFilters(Schema):
    poll: int | None = Field(None, description="Only this poll's runs.")
    start: dt.date | None = Field(None, description="Local day on or after.")
    end: dt.date | None = Field(None, description="Local day on or before.")
    type: str = Field("", description="universal, regional or propagated.")


class QuestionFilters(Schema):
    poll: int | None = Field(None, description="Only this poll's questions.")
    type: str = Field("", description="open, categorical or numeric.")


class PollFilters(Schema):
    search: str = Field("", max_length=200, description="Name contains.")


class AnswerOut(Schema):
    question: int
    value: str
    value_number: float | None
    category: str
    submitted_on: dt.datetime


class ContactRef(Schema):
    id: int
    name: str
    uuid: str


class ResponseOut(Schema):
    id: int
    run_uuid: str
    contact: ContactRef
    org_unit: Ref | None
    status: str = Field(description="C complete, P partial, E empty.")
    is_active: bool = Field(description="False for a superseded run of the same contact.")
    created_on: dt.datetime
    updated_on: dt.datetime
    exit_type: str
    answers: list[AnswerOut]


class ResponseFilters(Schema):
    include_inactive: bool = Field(False, description="Also superseded responses.")
    status: str = Field("", description="C, P or E.")


class ChartParams(Schema):
    """Documented filters; ``field.<key>=text`` parameters are read as well."""

    window: str = Field(
        "month", description="month, 30d, 60d, 90d, 6m, 12m, all or custom (start, end)."
    )
    start: dt.date | None = None
    end: dt.date | None = None
    panel: int | None = Field(None, description="A panel group id.")
    sub: bool = Field(True, description="Include the panel's sub-panels.")
    cohort: int | None = Field(None, description="A cohort group id.")
    split: bool = Field(False, description="Numeric: one series per panel.")


class SummaryOut(Schema):
    dates: int
    mean: float | None
    stdev: float | None = Field(description="Population standard deviation.")
    response_rate: float | None
    answers: int
    responses: int


class ChartOut(Schema):
    """A question card. Always: ``question``, ``filters``, ``dates``, ``pollruns``,
    ``answers``, ``responses``, ``response_rate``, ``summary``. Numeric adds ``sum``,
    ``average``, ``series_by_panel``; categorical ``categories``, ``counts``, ``shares``;
    open ``words``, ``words_source``."""

    question: dict[str, Any]
    filters: dict[str, Any]
    dates: list[dt.date]
    pollruns: list[int]
    answers: list[int]
    responses: list[int]
    response_rate: list[float | None]
    summary: SummaryOut
    sum: list[float | None] | None = None
    average: list[float | None] | None = None
    series_by_panel: dict[str, dict[str, Any]] | None = None
    categories: list[str] | None = None
    counts: dict[str, list[int]] | None = None
    shares: dict[str, list[float | None]] | None = None
    words: list[dict[str, Any]] | None = None
    words_source: str | None = None


class MapUnitOut(Schema):
    id: int
    name: str
    panel: str
    geometry: dict[str, Any] | None
    value: float | None
    category: str | None
    count: int


class MapOut(Schema):
    type: str
    categories: list[str]
    filters: dict[str, Any]
    units: list[MapUnitOut]


class ParticipationRow(Schema):
    id: int | None
    name: str
    empty: int
    partial: int
    complete: int
    total: int
    completion: float | None = Field(description="complete ÷ total × 100.")


class ParticipationOut(Schema):
    pollrun: int
    by: str
    rows: list[ParticipationRow]
    total: ParticipationRow


class PollRunSummaryOut(Schema):
    pollrun: int
    questions: list[dict[str, Any]]


class HomeOut(Schema):
    recent_pollruns: list[dict[str, Any]]
    active_panels: list[dict[str, Any]]
    active_cohorts: list[dict[str, Any]]
    featured_indicator: int | None
    days: int


class IndicatorOut(Schema):
    id: int
    name: str
    start_date: dt.date
    end_date: dt.date
    baseline_question: Ref
    follow_up_question: Ref
    baseline_poll: Ref
    follow_up_poll: Ref
    y_axis_title: str
    goal: float | None
    use_sample_data: bool


class IndicatorDataOut(IndicatorOut):
    data: dict[str, Any] = Field(
        description='{"baseline", "baseline_contacts", "goal", "target", "sample", '
        '"follow_up": [{"date", "pollrun", "sum", "response_rate"}], "summary": {...}}'
    )


class PanelParams(Schema):
    panel: int | None = Field(None, description="A panel group id.")
    sub: bool = Field(True, description="Include the panel's sub-panels.")
