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
# api_transfer first: its literal paths (/workflows/import, .../actions/import) would
# otherwise be caught by /workflows/{workflow_id} and .../actions/{action_id} (str converters)
for part in (api_transfer, api_workflows, api_dataops, api_filters, api_actions, api_delivery):
    router.add_router("", part.router)
