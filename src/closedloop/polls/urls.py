"""Polls pages. Each part of the module keeps its own list; they are joined here."""

from closedloop.polls import (
    urls_contacts,
    urls_dashboards,
    urls_indicators,
    urls_setup,
)

app_name = "polls"
urlpatterns = [
    *urls_dashboards.urlpatterns,
    *urls_contacts.urlpatterns,
    *urls_setup.urlpatterns,
    *urls_indicators.urlpatterns,
]
