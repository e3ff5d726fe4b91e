"""Delivery pages: run form, runs, outbox, Canvas OAuth and schedules."""

from django.urls import URLPattern, path

from closedloop.feedback import canvas, views_runs, views_schedules

R = "<int:wid>/runs/<int:rid>"
S = "<int:wid>/schedules"

urlpatterns: list[URLPattern] = [
    path("<int:wid>/actions/<int:aid>/run/", views_runs.run_create, name="run_create"),
    path("<int:wid>/runs/", views_runs.run_list, name="run_list"),
    path(f"{R}/", views_runs.run_detail, name="run_detail"),
    path(f"{R}/resend/", views_runs.resend_failed, name="resend_failed"),
    path(f"{R}/cancel/", views_runs.run_cancel, name="run_cancel"),
    path("outbox/", views_runs.outbox_page, name="outbox"),
    path("canvas/<str:instance>/authorize/", canvas.canvas_authorize, name="canvas_authorize"),
    path("canvas/callback/", canvas.canvas_callback, name="canvas_callback"),
    path(f"{S}/", views_schedules.schedule_list, name="schedule_list"),
    path(f"{S}/create/", views_schedules.schedule_create, name="schedule_create"),
    path(f"{S}/<int:sid>/", views_schedules.schedule_edit, name="schedule_edit"),
    path(f"{S}/<int:sid>/delete/", views_schedules.schedule_delete, name="schedule_delete"),
    path(f"{S}/<int:sid>/pause/", views_schedules.schedule_pause, name="schedule_pause"),
]
