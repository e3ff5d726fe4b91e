"""Assembles every app's router under /api/v1/.

Docs at ``/api/v1/docs`` (Swagger UI served from ninja's own static files, no CDN),
the schema at ``/api/v1/openapi.json``. ``docs/api.md`` describes every endpoint.
"""

from ninja import NinjaAPI

from closedloop.accounts.api import router as accounts_router
from closedloop.api.auth import SessionAuth, TokenAuth, with_account_scope
from closedloop.api.errors import install_error_handlers
from closedloop.feedback.api import router as feedback_router
from closedloop.jobs.api import router as jobs_router
from closedloop.people.api import router as people_router
from closedloop.polls.api import router as polls_router
from closedloop.registry.api import router as registry_router

api = NinjaAPI(
    title="closedloop API",
    version="1",
    urls_namespace="api",
    auth=[TokenAuth(), SessionAuth()],
    description=(
        "Authenticate with `Authorization: Bearer <token>` (a personal API token) or the "
        "browser session. `X-Account: <slug>` picks the account. Lists take `limit` and "
        "`offset` and return `{count, items}`; errors are `{detail, errors: [{field, message}]}`."
    ),
)
# every operation runs inside the account scope its authentication opens
api.add_decorator(with_account_scope, mode="view")
install_error_handlers(api)

api.add_router("", accounts_router)
api.add_router("", registry_router)
api.add_router("", people_router)
api.add_router("", jobs_router)
api.add_router("", feedback_router)
api.add_router("", polls_router)
