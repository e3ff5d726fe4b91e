from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "closedloop.core"
    label = "core"
