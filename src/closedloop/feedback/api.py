"""API: feedback workflows, tables, filters, actions, runs, schedules, logs."""

from ninja import Router

from closedloop.feedback import (
    api_actions,
    api_dataops,
    api_delivery,
    api_filters,
    api_transfer,
    api_workflows,
)

router = Router(tags=["feedback"])
for part in (api_workflows, api_dataops, api_filters, api_actions, api_delivery, api_transfer):
    router.add_router("", part.router)
