from django.urls import path

from closedloop.registry import views

app_name = "registry"

urlpatterns: list = []
