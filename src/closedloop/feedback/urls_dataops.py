"""Data operations pages: the upload / merge wizard and the SQL connection pages."""

from django.urls import URLPattern, path

from closedloop.feedback import views_dataops as views
from closedloop.feedback.dataops import views_sql

urlpatterns: list[URLPattern] = [
    path("<int:wid>/data/", views.upload_start, name="upload_start"),
    path("<int:wid>/data/undo/", views.upload_undo, name="upload_undo"),
    path("<int:wid>/data/job/<int:job_id>/", views.upload_job, name="upload_job"),
    path("<int:wid>/data/from/<slug:kind>/", views.upload_source, name="upload_source"),
    path("<int:wid>/data/<uuid:token>/columns/", views.upload_columns, name="upload_columns"),
    path("<int:wid>/data/<uuid:token>/keys/", views.upload_keys, name="upload_keys"),
    path("<int:wid>/data/<uuid:token>/preview/", views.upload_preview, name="upload_preview"),
    path("<int:wid>/data/<uuid:token>/done/", views.upload_done, name="upload_done"),
    path("sql/", views_sql.sqlconn_list, name="sqlconn_list"),
    path("sql/new/", views_sql.sqlconn_create, name="sqlconn_create"),
    path("sql/<int:pk>/", views_sql.sqlconn_edit, name="sqlconn_edit"),
    path("sql/<int:pk>/delete/", views_sql.sqlconn_delete, name="sqlconn_delete"),
    path("sql/<int:pk>/test/", views_sql.sqlconn_test, name="sqlconn_test"),
]
