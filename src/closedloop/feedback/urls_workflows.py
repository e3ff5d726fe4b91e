"""Workflow, table, column, row, view, statistics and log pages (under /feedback/)."""

from django.urls import URLPattern, path

from closedloop.feedback import (
    views_columns,
    views_logs,
    views_rows,
    views_stats,
    views_table,
    views_workflows,
)

urlpatterns: list[URLPattern] = [
    path("", views_workflows.workflow_list, name="workflow_list"),
    path("new/", views_workflows.workflow_create, name="workflow_create"),
    path("<int:wid>/", views_workflows.workflow_detail, name="workflow_detail"),
    path("<int:wid>/star/", views_workflows.workflow_star, name="workflow_star"),
    path("<int:wid>/presence/", views_workflows.workflow_presence, name="workflow_presence"),
    path("<int:wid>/settings/", views_workflows.workflow_settings, name="workflow_settings"),
    path(
        "<int:wid>/settings/attributes/",
        views_workflows.workflow_attribute_set,
        name="workflow_attribute_set",
    ),
    path(
        "<int:wid>/settings/attributes/delete/",
        views_workflows.workflow_attribute_delete,
        name="workflow_attribute_delete",
    ),
    path("<int:wid>/settings/share/", views_workflows.workflow_share, name="workflow_share"),
    path(
        "<int:wid>/settings/share/<int:user_id>/remove/",
        views_workflows.workflow_unshare,
        name="workflow_unshare",
    ),
    path("<int:wid>/settings/clone/", views_workflows.workflow_clone, name="workflow_clone"),
    path("<int:wid>/settings/flush/", views_workflows.workflow_flush, name="workflow_flush"),
    path("<int:wid>/settings/delete/", views_workflows.workflow_delete, name="workflow_delete"),
    # the table
    path("<int:wid>/table/", views_table.table_page, name="table"),
    path("<int:wid>/table/download.<str:fmt>", views_table.table_download, name="table_download"),
    path("<int:wid>/table/undo/", views_table.table_undo, name="table_undo"),
    path("<int:wid>/views/<int:vid>/", views_table.view_table, name="view_table"),
    path(
        "<int:wid>/views/<int:vid>/download.<str:fmt>",
        views_table.view_download,
        name="view_download",
    ),
    # rows
    path("<int:wid>/rows/add/", views_rows.row_add, name="row_add"),
    path("<int:wid>/rows/edit/", views_rows.row_edit, name="row_edit"),
    path("<int:wid>/rows/delete/", views_rows.row_delete, name="row_delete"),
    # columns
    path("<int:wid>/columns/add/", views_columns.column_add, name="column_add"),
    path("<int:wid>/columns/<int:cid>/", views_columns.column_edit, name="column_edit"),
    path("<int:wid>/columns/<int:cid>/rename/", views_columns.column_rename, name="column_rename"),
    path(
        "<int:wid>/columns/<int:cid>/type/",
        views_columns.column_change_type,
        name="column_change_type",
    ),
    path("<int:wid>/columns/<int:cid>/clone/", views_columns.column_clone, name="column_clone"),
    path("<int:wid>/columns/<int:cid>/delete/", views_columns.column_delete, name="column_delete"),
    path("<int:wid>/columns/<int:cid>/move/", views_columns.column_move, name="column_move"),
    # statistics and logs
    path("<int:wid>/stats/", views_stats.stats_overview, name="stats"),
    path("<int:wid>/stats/columns/<int:cid>/", views_stats.stats_column, name="stats_column"),
    path("<int:wid>/stats/row/", views_stats.stats_row, name="stats_row"),
    path("<int:wid>/logs/", views_logs.log_list, name="log_list"),
    path("<int:wid>/logs/export.csv", views_logs.log_export, name="log_export"),
]
