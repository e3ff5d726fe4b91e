from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "closedloop.accounts"
    label = "accounts"
