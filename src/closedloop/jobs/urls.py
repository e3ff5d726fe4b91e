from django.urls import path

from closedloop.jobs import views

app_name = "jobs"

urlpatterns: list = []
