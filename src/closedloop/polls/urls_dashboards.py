"""Polls dashboards: home, polls, poll runs, start, message, restart, exports."""

from django.urls import path

from closedloop.polls import views_dashboards, views_exports, views_pollrun

urlpatterns = [
    path("", views_dashboards.home, name="home"),
    path("polls/", views_dashboards.poll_list, name="poll_list"),
    path("polls/<int:pk>/", views_dashboards.poll_detail, name="poll_detail"),
    path("polls/<int:pk>/export.xlsx", views_exports.poll_export, name="poll_export"),
    path("start/", views_dashboards.poll_start, name="poll_start"),
    path("jobs/<int:pk>/", views_dashboards.job_detail, name="job"),
    path("pollruns/", views_pollrun.pollrun_list, name="pollrun_list"),
    path("pollruns/<int:pk>/", views_pollrun.pollrun_detail, name="pollrun_detail"),
    path(
        "pollruns/<int:pk>/responses.<str:fmt>",
        views_exports.pollrun_export,
        name="pollrun_export",
    ),
    path("pollruns/<int:pk>/message/", views_pollrun.pollrun_message, name="pollrun_message"),
    path("pollruns/<int:pk>/restart/", views_pollrun.pollrun_restart, name="pollrun_restart"),
]
