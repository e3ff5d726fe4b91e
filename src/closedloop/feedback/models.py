"""Feedback workflows (OnTask's concepts): a workflow owns one data table, its columns,
views, filters, conditions, actions, schedules, deliveries and logs.

The data itself lives in one real SQL table per workflow (see ``table.py``): a row id
primary key plus one physical column ``c<slot>`` per :class:`Column`, so renaming a column
is a metadata change and names may hold spaces and symbols.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from closedloop.core.models import TenantModel, TimeStampedModel

COLUMN_NAME_MAX = 63


class DataType(models.TextChoices):
    STRING = "string", _("text")
    INTEGER = "integer", _("integer")
    DOUBLE = "double", _("number")
    BOOLEAN = "boolean", _("true/false")
    DATETIME = "datetime", _("date and time")


class ShareRole(models.TextChoices):
    OWNER = "owner", _("owner")
    EDITOR = "editor", _("editor")
    VIEWER = "viewer", _("viewer")


class Workflow(TenantModel, TimeStampedModel):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="feedback_workflows"
    )
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    attributes = models.JSONField(_("attributes"), default=dict, blank=True)
    nrows = models.PositiveIntegerField(default=0)
    ncols = models.PositiveIntegerField(default=0)
    #: optimistic-lock counter: bumped by every write; forms carry the value they were built on
    version = models.PositiveIntegerField(default=1)
    #: next free physical column slot (``c<slot>``)
    next_slot = models.PositiveIntegerField(default=1)
    #: number of the last table version kept for undo
    table_version = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["account", "name"], name="feedback_workflow_name")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def table_name(self) -> str:
        return f"fbw_{self.pk}"


class WorkflowShare(TenantModel):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="shares")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    role = models.CharField(max_length=10, choices=ShareRole.choices, default=ShareRole.EDITOR)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workflow", "user"], name="feedback_share_unique")
        ]


class WorkflowStar(TenantModel):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="stars")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workflow", "user"], name="feedback_star_unique")
        ]


class WorkflowPresence(TenantModel):
    """Who has a workflow open (refreshed by the pages every ~20 s; no locks)."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="presence")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    last_seen = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workflow", "user"], name="feedback_presence_unique")
        ]


class Column(TenantModel):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="columns")
    name = models.CharField(_("name"), max_length=COLUMN_NAME_MAX)
    #: physical column is ``c<slot>`` in the workflow's table
    slot = models.PositiveIntegerField()
    data_type = models.CharField(_("type"), max_length=10, choices=DataType.choices)
    is_key = models.BooleanField(_("key"), default=False)
    position = models.PositiveIntegerField(default=1)
    description = models.TextField(_("description"), blank=True)
    #: allowed values (typed JSON values); empty: any
    categories = models.JSONField(_("categories"), default=list, blank=True)
    active_from = models.DateTimeField(_("active from"), null=True, blank=True)
    active_to = models.DateTimeField(_("active to"), null=True, blank=True)
    in_viz = models.BooleanField(_("in dashboards"), default=True)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "name"], name="feedback_column_name"),
            models.UniqueConstraint(fields=["workflow", "slot"], name="feedback_column_slot"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def physical(self) -> str:
        return f"c{self.slot}"


class TableVersion(TenantModel):
    """A copy of the table kept before a data operation, so it can be undone."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    table_name = models.CharField(max_length=80)
    #: the Column rows as they were (list of dicts with every Column field)
    columns = models.JSONField(default=list)
    nrows = models.PositiveIntegerField(default=0)
    label = models.CharField(max_length=200)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "number"], name="feedback_version_unique")
        ]


class Filter(TenantModel):
    """A named, reusable row selection over the workflow's table."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="filters")
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    #: jQuery-QueryBuilder JSON (see docs/conditions.md)
    formula = models.JSONField(default=dict)
    selected_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "name"], name="feedback_filter_name")
        ]

    def __str__(self) -> str:
        return self.name


class View(TenantModel):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="views")
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    #: ordered list of Column ids shown (empty: all columns)
    column_ids = models.JSONField(default=list, blank=True)
    filter = models.ForeignKey(
        Filter, null=True, blank=True, on_delete=models.SET_NULL, related_name="views"
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "name"], name="feedback_view_name")
        ]

    def __str__(self) -> str:
        return self.name


class ActionType(models.TextChoices):
    PERSONALIZED_TEXT = "personalized_text", _("Personalized text")
    EMAIL = "email", _("Personalized email")
    SMS = "sms", _("Personalized SMS")
    JSON = "json", _("Personalized JSON")
    CANVAS_EMAIL = "canvas_email", _("Canvas inbox message")
    RUBRIC = "rubric", _("Rubric feedback")
    EMAIL_REPORT = "email_report", _("Email report")
    JSON_REPORT = "json_report", _("JSON report")
    SURVEY = "survey", _("Survey")
    TODO_LIST = "todo_list", _("TODO list")


#: action types that produce messages ("action out")
OUT_ACTION_TYPES = {
    ActionType.PERSONALIZED_TEXT,
    ActionType.EMAIL,
    ActionType.SMS,
    ActionType.JSON,
    ActionType.CANVAS_EMAIL,
    ActionType.RUBRIC,
    ActionType.EMAIL_REPORT,
    ActionType.JSON_REPORT,
}
IN_ACTION_TYPES = {ActionType.SURVEY, ActionType.TODO_LIST}


class TextFormat(models.TextChoices):
    HTML = "html", _("Rich text (HTML)")
    MARKDOWN = "markdown", _("Markdown")
    TEXT = "text", _("Plain text")


class Action(TenantModel, TimeStampedModel):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="actions")
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    action_type = models.CharField(_("type"), max_length=20, choices=ActionType.choices)
    #: the rows the action applies to (null: every row)
    filter = models.ForeignKey(
        Filter, null=True, blank=True, on_delete=models.SET_NULL, related_name="actions"
    )
    text_content = models.TextField(_("text"), blank=True)
    text_format = models.CharField(max_length=10, choices=TextFormat.choices, default="html")
    subject = models.CharField(_("subject"), max_length=500, blank=True)
    target_url = models.URLField(_("target URL"), max_length=500, blank=True)
    #: encrypted with closedloop.core.crypto (bearer token for JSON actions)
    token_encrypted = models.TextField(blank=True)
    serve_enabled = models.BooleanField(_("served to learners"), default=False)
    active_from = models.DateTimeField(_("active from"), null=True, blank=True)
    active_to = models.DateTimeField(_("active to"), null=True, blank=True)
    shuffle = models.BooleanField(_("shuffle questions"), default=False)
    #: type-specific settings (item column, cc, bcc, track_read, report columns, ...)
    options = models.JSONField(default=dict, blank=True)
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "name"], name="feedback_action_name")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_out(self) -> bool:
        return self.action_type in OUT_ACTION_TYPES


class Condition(TenantModel):
    action = models.ForeignKey(Action, on_delete=models.CASCADE, related_name="conditions")
    name = models.CharField(_("name"), max_length=COLUMN_NAME_MAX)
    description = models.TextField(_("description"), blank=True)
    formula = models.JSONField(default=dict)
    #: rows matching (action filter AND condition)
    selected_count = models.PositiveIntegerField(default=0)
    position = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["action", "name"], name="feedback_condition_name")
        ]

    def __str__(self) -> str:
        return self.name


class ActionColumn(TenantModel):
    """Survey question, rubric criterion or TODO item: a column used by an action."""

    action = models.ForeignKey(Action, on_delete=models.CASCADE, related_name="action_columns")
    column = models.ForeignKey(Column, on_delete=models.CASCADE, related_name="action_columns")
    condition = models.ForeignKey(
        Condition, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changes_allowed = models.BooleanField(default=True)
    position = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["action", "column"], name="feedback_actioncolumn_unique"
            )
        ]


class RubricCell(TenantModel):
    action = models.ForeignKey(Action, on_delete=models.CASCADE, related_name="rubric_cells")
    column = models.ForeignKey(Column, on_delete=models.CASCADE, related_name="rubric_cells")
    #: index into the criterion column's categories
    level = models.PositiveIntegerField()
    description = models.TextField(blank=True)
    feedback = models.TextField(blank=True)

    class Meta:
        ordering = ["column_id", "level"]
        constraints = [
            models.UniqueConstraint(fields=["action", "column", "level"], name="feedback_rubric")
        ]


class RunStatus(models.TextChoices):
    PREPARING = "preparing", _("preparing")
    SENDING = "sending", _("sending")
    DONE = "done", _("done")
    FAILED = "failed", _("failed")
    CANCELLED = "cancelled", _("cancelled")


class ActionRun(TenantModel):
    """One execution of an out action: the messages it produced are its deliveries."""

    action = models.ForeignKey(Action, on_delete=models.CASCADE, related_name="runs")
    job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    schedule = models.ForeignKey(
        "feedback.Schedule", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=10, choices=RunStatus.choices, default="preparing")
    #: the run form's fields (item column, subject, cc, bcc, exclude_values, ...)
    options = models.JSONField(default=dict, blank=True)
    total = models.PositiveIntegerField(default=0)
    #: name of the integer column counting reads (track_read)
    track_column = models.CharField(max_length=COLUMN_NAME_MAX, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # --- Part F (delivery): the outbox lease. One sender task at a time per run, so
    # bursts and pauses hold; a lease past ``sender_lease_until`` belongs to a dead task.
    sender_lease = models.CharField(max_length=40, blank=True)
    sender_lease_until = models.DateTimeField(null=True, blank=True)
    # --- end Part F

    class Meta:
        ordering = ["-created_at", "-id"]


class Channel(models.TextChoices):
    EMAIL = "email", _("email")
    SMS = "sms", _("SMS")
    JSON = "json", _("JSON")
    CANVAS = "canvas", _("Canvas inbox")


class DeliveryStatus(models.TextChoices):
    QUEUED = "queued", _("queued")
    SENDING = "sending", _("sending")
    SENT = "sent", _("sent")
    FAILED = "failed", _("failed")
    CANCELLED = "cancelled", _("cancelled")


class Delivery(TenantModel):
    """One personalized message in the outbox (queued -> sending -> sent / failed)."""

    run = models.ForeignKey(ActionRun, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    recipient = models.CharField(max_length=320)
    #: the value of the action's key/item column for this row
    row_key = models.CharField(max_length=255, blank=True)
    subject = models.TextField(blank=True)
    body = models.TextField(blank=True)
    #: channel extras: cc, bcc, text body, JSON payload, Canvas ids
    extra = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default="queued", db_index=True
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=40, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    open_count = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    provider_id = models.CharField(max_length=255, blank=True)
    # --- Part F (delivery): the table row the message came from (read tracking updates
    # its EmailRead column) and the worker that claimed it (crash recovery).
    rid = models.BigIntegerField(null=True, blank=True)
    claimed_by = models.CharField(max_length=200, blank=True)
    # --- end Part F

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["run", "status"]),
            models.Index(fields=["status", "next_attempt_at"]),
        ]


class ScheduleStatus(models.TextChoices):
    PENDING = "pending", _("pending")
    EXECUTING = "executing", _("executing")
    DONE = "done", _("done")
    DONE_ERROR = "done_error", _("done with error")
    PAUSED = "paused", _("paused")


class OperationType(models.TextChoices):
    ACTION_RUN = "action_run", _("Run an action")
    SQL_REFRESH = "sql_refresh", _("Refresh from an SQL connection")
    SOURCE_REFRESH = "source_refresh", _("Refresh from a table source")
    PLUGIN_RUN = "plugin_run", _("Run a plugin")


class Schedule(TenantModel, TimeStampedModel):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="schedules")
    action = models.ForeignKey(
        Action, null=True, blank=True, on_delete=models.CASCADE, related_name="schedules"
    )
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    operation_type = models.CharField(max_length=20, choices=OperationType.choices)
    #: the run form's fields as JSON (like OnTask's payload), incl. exclude_values
    payload = models.JSONField(default=dict, blank=True)
    execute_start = models.DateTimeField(_("start"), null=True, blank=True)
    execute_until = models.DateTimeField(_("end"), null=True, blank=True)
    #: 5-field crontab; empty for a one-off run
    frequency = models.CharField(_("frequency"), max_length=100, blank=True)
    #: repeating runs reach only rows not yet sent to
    incremental = models.BooleanField(_("only new rows"), default=False)
    status = models.CharField(max_length=12, choices=ScheduleStatus.choices, default="pending")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_outcome = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "name"], name="feedback_schedule_name")
        ]

    def __str__(self) -> str:
        return self.name


class WorkflowLog(TenantModel):
    """Every operation on a workflow, with its details (OnTask's Log)."""

    workflow = models.ForeignKey(
        Workflow, null=True, blank=True, on_delete=models.SET_NULL, related_name="logs"
    )
    #: kept when the workflow is deleted
    workflow_name = models.CharField(max_length=200, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    name = models.CharField(max_length=60, db_index=True)
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class SQLEngine(models.TextChoices):
    POSTGRESQL = "postgresql", "PostgreSQL"
    MYSQL = "mysql", "MySQL / MariaDB"
    SQLITE = "sqlite", "SQLite"


class SQLConnection(TenantModel, TimeStampedModel):
    """An SQL database an account admin lets instructors load data from."""

    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    engine = models.CharField(_("engine"), max_length=12, choices=SQLEngine.choices)
    host = models.CharField(_("host"), max_length=255, blank=True)
    port = models.PositiveIntegerField(_("port"), null=True, blank=True)
    database = models.CharField(_("database"), max_length=500)
    user = models.CharField(_("user"), max_length=200, blank=True)
    #: encrypted with closedloop.core.crypto; empty: asked at run time
    password_encrypted = models.TextField(blank=True)
    db_table = models.CharField(_("table"), max_length=200, blank=True)
    query = models.TextField(_("query"), blank=True)
    enabled = models.BooleanField(_("enabled"), default=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["account", "name"], name="feedback_sqlconn_name")
        ]

    def __str__(self) -> str:
        return self.name


class OAuthToken(TenantModel):
    """A user's OAuth2 token for one Canvas instance (encrypted)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    instance_name = models.CharField(max_length=100)
    access_token_encrypted = models.TextField()
    refresh_token_encrypted = models.TextField(blank=True)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "user", "instance_name"], name="feedback_oauth_unique"
            )
        ]


class PluginSetting(TenantModel):
    """An account admin's decision to enable a plugin found in the plugin folder."""

    plugin_key = models.CharField(max_length=100)
    enabled = models.BooleanField(default=False)
    verified_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "plugin_key"], name="feedback_plugin_unique")
        ]


def column_snapshot(column: Column) -> dict[str, Any]:
    """The fields of a column, as kept in a TableVersion."""
    return {
        "id": column.pk,
        "name": column.name,
        "slot": column.slot,
        "data_type": column.data_type,
        "is_key": column.is_key,
        "position": column.position,
        "description": column.description,
        "categories": column.categories,
        "active_from": column.active_from.isoformat() if column.active_from else None,
        "active_to": column.active_to.isoformat() if column.active_to else None,
        "in_viz": column.in_viz,
    }
