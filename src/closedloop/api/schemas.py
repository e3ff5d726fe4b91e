"""Schemas shared by every router."""

from __future__ import annotations

from ninja import Schema


class FieldErrorOut(Schema):
    field: str
    message: str


class ErrorOut(Schema):
    """The one error shape: a sentence for people and a message per offending field."""

    detail: str
    errors: list[FieldErrorOut] = []


class Ref(Schema):
    """A reference to another object by id, with its name for display."""

    id: int
    name: str


#: The error responses every authenticated operation can give.
ERRORS = {401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut}
WRITE_ERRORS = {400: ErrorOut, 409: ErrorOut, **ERRORS}
