from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "closedloop.registry"
    label = "registry"
