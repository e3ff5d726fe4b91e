"""API: RapidPro connections, polls, questions, poll runs, responses, charts, participation,
indicators, messages."""

from ninja import Router

from closedloop.polls import (
    api_charts,
    api_connections,
    api_indicators,
    api_messages,
    api_polls,
)

router = Router(tags=["polls"])
for part in (api_connections, api_polls, api_charts, api_indicators, api_messages):
    router.add_router("", part.router)
