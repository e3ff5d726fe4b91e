from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "closedloop.api"
    label = "api"
