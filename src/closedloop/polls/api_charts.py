"""API: what the poll pages draw — question cards, maps, home figures.

The poll-detail page's JavaScript fetches these. Filters (query parameters, all
optional): ``window`` (``month`` default, ``30d``, ``60d``, ``90d``, ``6m``, ``12m``,
``all``, ``custom`` with ``start``/``end``), ``panel`` (a panel group id; 404 when the
caller cannot see it) with ``sub=0`` to leave sub-panels out, ``cohort`` (a cohort
group id), ``field.<key>=text`` (the contact's RapidPro field contains the text) and,
for numeric charts, ``split=1`` (one series per panel). A bad value answers 400 with the
parameter named in ``errors[].field``.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Query, Router

from closedloop.accounts.models import Membership
from closedloop.api.auth import membership_of
from closedloop.api.errors import field_error
from closedloop.api.schemas import ERRORS, WRITE_ERRORS
from closedloop.polls import selectors, stats
from closedloop.polls.schemas import ChartOut, ChartParams, HomeOut, MapOut

router = Router(tags=["polls"])


def filters_from(request: HttpRequest, membership: Membership) -> stats.Filters:
    """The request's chart filters (400 naming the parameter when one is wrong)."""
    try:
        return stats.parse_filters(membership, request.GET)
    except stats.FilterError as error:
        raise field_error(error.field, error.message) from None


def _flag(request: HttpRequest, name: str) -> bool:
    return request.GET.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@router.get(
    "/polls/questions/{question_id}/chart",
    response={200: ChartOut, **WRITE_ERRORS},
    summary="A question's chart data",
)
def question_chart(
    request: HttpRequest, question_id: int, params: Query[ChartParams]
) -> dict[str, Any]:
    """Everything a question card shows, per poll run in the window (one point per run,
    oldest first; runs without any response within the filters are left out):

    - always: ``question`` {id, name, type, categories}, ``filters`` (as applied),
      ``dates`` [YYYY-MM-DD], ``pollruns`` [ids, to link a point to its run], ``answers``
      [n], ``responses`` [n active responses, empty included], ``response_rate`` [%],
      ``summary`` {dates, mean, stdev (population, of the per-date averages),
      response_rate (mean across dates), answers, responses};
    - numeric: ``sum`` [..], ``average`` [.. | null] (values follow the account's
      same-day rule), ``series_by_panel`` {"<org unit id>": {id, name, sum, average,
      response_rate}} when ``split=1`` (else {});
    - categorical: ``categories`` [names], ``counts`` {category: [n]}, ``shares``
      {category: [% of the run's categorised answers]};
    - open: ``words`` [{word, count}] (top 50) and ``words_source`` ("rollup", or
      "latest_answers" when a cohort / field filter makes the words come from the newest
      2,000 matching answers).
    """
    membership = membership_of(request)
    question = selectors.get_question(membership, question_id)
    filters = filters_from(request, membership)
    return stats.question_chart(question, filters, split_by_panel=_flag(request, "split"))


@router.get(
    "/polls/questions/{question_id}/map",
    response={200: MapOut, **WRITE_ERRORS},
    summary="A question's map data",
)
def question_map(
    request: HttpRequest, question_id: int, params: Query[ChartParams]
) -> dict[str, Any]:
    """One entry per panel org unit in the filters: ``units`` [{id, name, panel,
    geometry (GeoJSON, simplified; a Point for units with only coordinates; null),
    value (numeric average over the window), category (the average's category, or the
    most common category), count (answers)}]; the page picks the colours."""
    membership = membership_of(request)
    question = selectors.get_question(membership, question_id)
    filters = filters_from(request, membership)
    return {**stats.map_data(question, filters), "filters": filters.as_params()}


@router.get("/polls/home", response={200: HomeOut, **ERRORS}, summary="Polls home figures")
def home(request: HttpRequest) -> dict[str, Any]:
    """``recent_pollruns`` (five newest visible runs: participants = empty + partial +
    complete, responses = complete, partial), ``active_panels`` / ``active_cohorts`` (top
    five by distinct contacts with a non-empty response in the last 30 days),
    ``featured_indicator`` (id or null)."""
    return stats.home_figures(membership_of(request))
