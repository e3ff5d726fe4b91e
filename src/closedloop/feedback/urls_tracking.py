"""The read-tracking pixel at ``/trck/<token>/`` (no login: mail clients fetch it)."""

from django.urls import URLPattern, path

from closedloop.feedback.views_runs import track_read

urlpatterns: list[URLPattern] = [
    path("<str:token>/", track_read, name="feedback_track_read"),
]
