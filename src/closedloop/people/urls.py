from django.urls import path

from closedloop.people import views

app_name = "people"

urlpatterns: list = []
