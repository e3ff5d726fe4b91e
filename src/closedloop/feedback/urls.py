"""Feedback pages. Each part of the module keeps its own list; they are joined here."""

from closedloop.feedback import (
    urls_actions,
    urls_dataops,
    urls_delivery,
    urls_filters,
    urls_transfer,
    urls_workflows,
)

app_name = "feedback"
urlpatterns = [
    *urls_workflows.urlpatterns,
    *urls_dataops.urlpatterns,
    *urls_filters.urlpatterns,
    *urls_actions.urlpatterns,
    *urls_delivery.urlpatterns,
    *urls_transfer.urlpatterns,
]
