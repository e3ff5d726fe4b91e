from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "closedloop.jobs"
    label = "jobs"
