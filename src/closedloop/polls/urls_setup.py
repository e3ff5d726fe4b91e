"""Setup pages: connections, the per-connection wizard, settings, poll editing."""

from django.urls import path

from closedloop.polls import views_setup as v
from closedloop.polls import views_wizard as wz

urlpatterns = [
    path("setup/", v.setup, name="setup"),
    path("setup/settings/", v.settings_edit, name="settings"),
    path("setup/connections/new/", v.connection_create, name="connection_create"),
    path("setup/connections/check/", v.connection_check, name="connection_check"),
    path("setup/connections/<int:pk>/", wz.connection_setup, name="connection_setup"),
    path("setup/connections/<int:pk>/edit/", v.connection_edit, name="connection_edit"),
    path("setup/connections/<int:pk>/delete/", v.connection_delete, name="connection_delete"),
    path("setup/connections/<int:pk>/test/", v.connection_test, name="connection_test"),
    path("setup/connections/<int:pk>/sync-now/", v.connection_sync, name="connection_sync"),
    path(
        "setup/connections/<int:pk>/fetch-runs/",
        v.connection_fetch_runs,
        name="connection_fetch_runs",
    ),
    path(
        "setup/connections/<int:pk>/health/",
        v.connection_health_panel,
        name="connection_health",
    ),
    path("setup/connections/<int:pk>/refresh/", wz.connection_refresh, name="connection_refresh"),
    path("setup/connections/<int:pk>/units/", wz.unit_options, name="connection_units"),
    path("setup/connections/<int:pk>/<slug:step>/", wz.connection_step, name="connection_step"),
    path("setup/polls/<int:pk>/edit/", v.poll_edit, name="poll_edit"),
]
