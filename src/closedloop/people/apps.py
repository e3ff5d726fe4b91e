from django.apps import AppConfig


class PeopleConfig(AppConfig):
    name = "closedloop.people"
    label = "people"
