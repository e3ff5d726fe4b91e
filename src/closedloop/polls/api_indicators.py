"""API: indicators (baseline vs follow-up) with their figures.

Indicators are account-wide definitions; their figures are computed within the caller's
panels (``panel`` / ``sub`` narrow them further, like the chart filters).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Query, Router

from closedloop.api.auth import membership_of
from closedloop.api.pagination import Page, PageParams, paginate
from closedloop.api.schemas import ERRORS
from closedloop.polls import selectors, stats
from closedloop.polls.models import Indicator
from closedloop.polls.schemas import IndicatorDataOut, IndicatorOut, PanelParams

router = Router(tags=["polls"])


def _indicator(indicator: Indicator) -> dict[str, Any]:
    base, follow = indicator.baseline_question, indicator.follow_up_question
    return {
        "id": indicator.pk,
        "name": indicator.name,
        "start_date": indicator.start_date,
        "end_date": indicator.end_date,
        "baseline_question": {"id": base.pk, "name": base.display_name},
        "follow_up_question": {"id": follow.pk, "name": follow.display_name},
        "baseline_poll": {"id": base.poll_id, "name": base.poll.display_name},
        "follow_up_poll": {"id": follow.poll_id, "name": follow.poll.display_name},
        "y_axis_title": indicator.y_axis_title,
        "goal": indicator.goal,
        "use_sample_data": indicator.use_sample_data,
    }


@router.get("/polls/indicators", response={200: Page[IndicatorOut], **ERRORS}, summary="Indicators")
def list_indicators(request: HttpRequest, page: Query[PageParams]) -> dict[str, Any]:
    """Indicators whose polls are active, newest range first."""
    qs = selectors.visible_indicators(membership_of(request))
    return paginate(qs.order_by("-end_date", "name", "pk"), page, _indicator)


@router.get(
    "/polls/indicators/{indicator_id}",
    response={200: IndicatorDataOut, **ERRORS},
    summary="An indicator with its figures",
)
def get_indicator(
    request: HttpRequest, indicator_id: int, params: Query[PanelParams]
) -> dict[str, Any]:
    """The indicator and ``data``: ``baseline`` (sum of each contact's first answer in the
    range), ``goal``, ``target`` (goal else baseline), ``sample`` (sandbox data shown
    instead of real answers), ``follow_up`` [{date, pollrun, sum, response_rate}],
    ``summary`` {dates, baseline, baseline_response_rate, follow_up_mean,
    follow_up_stdev (population), follow_up_response_rate}."""
    membership = membership_of(request)
    indicator = selectors.get_indicator(membership, indicator_id)
    panel = selectors.get_panel(membership, params.panel) if params.panel is not None else None
    unit_ids = selectors.panel_unit_ids(membership, panel, params.sub)
    return {**_indicator(indicator), "data": stats.indicator_data(indicator, unit_ids)}
