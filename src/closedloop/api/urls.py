"""Assembles every app's router under /api/v1/."""

from ninja import NinjaAPI

api = NinjaAPI(title="closedloop API", version="1", urls_namespace="api")
