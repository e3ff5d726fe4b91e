"""Action pages (editor, preview, conditions, ZIP, data entry) and served actions."""

from django.urls import URLPattern, path

from closedloop.feedback import views_actions as views
from closedloop.feedback import views_serve

A = "<int:wid>/actions/<int:aid>"

urlpatterns: list[URLPattern] = [
    path("<int:wid>/actions/", views.action_list, name="action_list"),
    path("<int:wid>/actions/create/", views.action_create, name="action_create"),
    path(f"{A}/", views.action_edit, name="action_edit"),
    path(f"{A}/preview/", views.action_preview, name="action_preview"),
    path(f"{A}/questions/", views.action_questions, name="action_questions"),
    path(f"{A}/rubric/", views.action_rubric, name="action_rubric"),
    path(f"{A}/delete/", views.action_delete, name="action_delete"),
    path(f"{A}/clone/", views.action_clone, name="action_clone"),
    path(f"{A}/test/", views.action_send_test, name="action_send_test"),
    path(f"{A}/zip/", views.action_zip, name="action_zip"),
    path(f"{A}/entry/", views_serve.action_entry, name="action_entry"),
    path(f"{A}/conditions/create/", views.action_condition_edit, name="action_condition_create"),
    path(f"{A}/conditions/count/", views.action_condition_count, name="action_condition_count"),
    path(f"{A}/conditions/<int:cid>/", views.action_condition_edit, name="action_condition_edit"),
    path(
        f"{A}/conditions/<int:cid>/delete/",
        views.action_condition_delete,
        name="action_condition_delete",
    ),
    path("serve/<uuid:public_id>/", views_serve.serve, name="serve"),
]
