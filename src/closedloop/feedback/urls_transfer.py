"""Export / import pages and plugin pages."""

from django.urls import URLPattern, path

from closedloop.feedback import views_plugins, views_transfer

urlpatterns: list[URLPattern] = [
    path("import/", views_transfer.import_workflow, name="import_workflow"),
    path("<int:wid>/export/", views_transfer.export_workflow, name="export_workflow"),
    path("<int:wid>/actions/import/", views_transfer.import_actions, name="import_actions"),
    path("plugins/", views_plugins.plugin_list, name="plugin_list"),
    path("plugins/<str:key>/enable/", views_plugins.plugin_enable, name="plugin_enable"),
    path("plugins/<str:key>/disable/", views_plugins.plugin_disable, name="plugin_disable"),
    path("<int:wid>/plugins/", views_plugins.plugin_run, name="plugin_run"),
]
