"""SMS polls run in RapidPro (TracPro's concepts), on closedloop's registry and people.

- A :class:`Connection` is one RapidPro workspace (host + encrypted API token) with its
  sync state: lock, persisted back-off, health and the incremental watermarks.
- RapidPro contact groups become :class:`ContactGroup` rows; a group chosen as a **panel**
  is linked to an org unit of the registry (panels inherit its hierarchy, maps and
  supervisor scoping), a group chosen as a **cohort** to a ``people.Cohort``.
- A RapidPro contact is a :class:`Contact` row tied one-to-one to a ``people.Person``.
- A flow chosen as a poll is a :class:`Poll`; its results are :class:`Question` rows.
- A :class:`PollRun` is one conducting of a poll (universal: one per poll per account-local
  day for runs closedloop did not start; regional/propagated: started from closedloop).
- A RapidPro run is a :class:`Response`; its values are :class:`Answer` rows. Answers carry
  denormalized copies (poll run, contact, org unit, local date, active flag) so every chart
  is one indexed GROUP BY without joins on the hot path.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from closedloop.core.models import TenantModel, TimeStampedModel


class SameDayRule(models.TextChoices):
    USE_LAST = "use_last", _("Use the last answer of the day")
    SUM = "sum", _("Sum the day's answers")


class PollsSettings(TenantModel):
    """Per-account settings of the polls module (one row per account)."""

    same_day_rule = models.CharField(
        _("same-day answers"), max_length=10, choices=SameDayRule.choices, default="use_last"
    )
    inbox_days = models.PositiveIntegerField(
        _("inbox window (days)"), default=30, help_text=_("How far back the inbox sync reaches.")
    )
    #: RapidPro field keys shown on contact pages and offered as poll filters
    visible_fields = models.JSONField(_("visible contact fields"), default=list, blank=True)
    featured_indicator = models.ForeignKey(
        "Indicator", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account"], name="polls_settings_one_per_account")
        ]

    def __str__(self) -> str:
        return f"polls settings {self.account_id}"


class Connection(TenantModel, TimeStampedModel):
    """One RapidPro workspace an account syncs from."""

    name = models.CharField(_("name"), max_length=100)
    host_url = models.URLField(
        _("RapidPro URL"), max_length=255, help_text=_("e.g. https://rapidpro.io")
    )
    #: encrypted with closedloop.core.crypto; never echoed back
    token_encrypted = models.TextField()
    workspace_name = models.CharField(_("workspace"), max_length=200, blank=True)
    workspace_timezone = models.CharField(max_length=64, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    sync_interval_minutes = models.PositiveIntegerField(_("sync every (minutes)"), default=30)

    # --- sync state: lock, persisted back-off, health (never in a cache) ---
    #: set while a sync job holds the connection (conditional update); expires on its own
    sync_locked_until = models.DateTimeField(null=True, blank=True)
    sync_job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    next_sync_at = models.DateTimeField(null=True, blank=True, db_index=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_sync_started_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    #: {"flows": n, "questions": n, "contacts": n, "runs": n, "messages": n, ...} of the last sync
    last_counts = models.JSONField(default=dict, blank=True)

    # --- incremental watermarks (modified_on of the newest item ingested) and cursors ---
    runs_after = models.DateTimeField(null=True, blank=True)
    #: RapidPro cursor of an interrupted run fetch, to resume exactly where it stopped
    runs_cursor = models.TextField(blank=True)
    #: the ``before`` bound the interrupted fetch was using (a resumed cursor needs it)
    runs_before = models.DateTimeField(null=True, blank=True)
    contacts_after = models.DateTimeField(null=True, blank=True)
    messages_after = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["account", "name"], name="polls_connection_name")
        ]

    def __str__(self) -> str:
        return self.name


class GroupRole(models.TextChoices):
    NONE = "", _("not used")
    PANEL = "panel", _("panel")
    COHORT = "cohort", _("cohort")


class ContactGroup(TenantModel, TimeStampedModel):
    """A RapidPro contact group, optionally used as a panel (→ org unit) or a cohort."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="groups")
    uuid = models.CharField(max_length=36)
    name = models.CharField(_("name"), max_length=255)
    query = models.TextField(blank=True)
    count = models.PositiveIntegerField(default=0)
    role = models.CharField(_("use as"), max_length=10, choices=GroupRole.choices, blank=True)
    org_unit = models.ForeignKey(
        "registry.OrgUnit",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="poll_panels",
        verbose_name=_("org unit"),
    )
    cohort = models.ForeignKey(
        "people.Cohort",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="poll_groups",
        verbose_name=_("cohort"),
    )
    is_present = models.BooleanField(default=True, help_text="still exists in RapidPro")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "uuid"], name="polls_group_uuid")
        ]
        indexes = [models.Index(fields=["account", "role"], name="polls_group_role")]

    def __str__(self) -> str:
        return self.name


class ContactStatus(models.TextChoices):
    ACTIVE = "active", _("active")
    BLOCKED = "blocked", _("blocked")
    STOPPED = "stopped", _("stopped")
    ARCHIVED = "archived", _("archived")
    DELETED = "deleted", _("deleted")


class Contact(TenantModel, TimeStampedModel):
    """A RapidPro contact; the person behind it is a shared ``people.Person``."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="contacts")
    person = models.OneToOneField(
        "people.Person", on_delete=models.CASCADE, related_name="rapidpro_contact"
    )
    uuid = models.CharField(max_length=36)
    name = models.CharField(_("name"), max_length=255, blank=True)
    language = models.CharField(_("language"), max_length=3, blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=ContactStatus.choices, default=ContactStatus.ACTIVE
    )
    urns = models.JSONField(default=list, blank=True)
    #: uuids of every RapidPro group the contact is in (tracked or not), so pushes keep them
    group_uuids = models.JSONField(default=list, blank=True)
    panel = models.ForeignKey(
        ContactGroup, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    #: the panel's org unit (denormalized for scoping); null: no panel matched
    org_unit = models.ForeignKey(
        "registry.OrgUnit", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    fields = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    modified_on = models.DateTimeField(null=True, blank=True)
    last_seen_on = models.DateTimeField(null=True, blank=True)
    #: local edits not yet confirmed by RapidPro (a push job is queued or failed)
    push_pending = models.BooleanField(default=False)
    push_error = models.TextField(blank=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "uuid"], name="polls_contact_uuid")
        ]
        indexes = [
            models.Index(fields=["account", "org_unit"], name="polls_contact_unit"),
            models.Index(fields=["account", "name"], name="polls_contact_name"),
        ]

    def __str__(self) -> str:
        return self.name or self.uuid


class DataField(TenantModel):
    """A RapidPro contact field (values live in ``Contact.fields`` and ``Person.fields``)."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="fields")
    key = models.CharField(max_length=64)
    label = models.CharField(max_length=255)
    value_type = models.CharField(max_length=20, default="text")
    is_visible = models.BooleanField(_("visible"), default=False)

    class Meta:
        ordering = ["label"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "key"], name="polls_field_key")
        ]

    def __str__(self) -> str:
        return self.label


class Boundary(TenantModel):
    """A RapidPro admin boundary (OSM id, level, parent, geometry)."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="boundaries")
    osm_id = models.CharField(max_length=64)
    name = models.CharField(max_length=255)
    level = models.PositiveSmallIntegerField(default=0)
    parent_osm_id = models.CharField(max_length=64, blank=True)
    geometry = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["level", "name"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "osm_id"], name="polls_boundary_osm")
        ]

    def __str__(self) -> str:
        return self.name


class Poll(TenantModel, TimeStampedModel):
    """A RapidPro flow used as a poll."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="polls")
    flow_uuid = models.CharField(max_length=36)
    rapidpro_name = models.CharField(max_length=255)
    #: blank: follow RapidPro's name; a custom name survives re-syncs
    name = models.CharField(_("name"), max_length=255, blank=True)
    is_active = models.BooleanField(_("used as a poll"), default=False)
    archived = models.BooleanField(default=False)
    #: false when the flow vanished from RapidPro (kept with its data)
    is_present = models.BooleanField(default=True)
    flow_type = models.CharField(max_length=20, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["rapidpro_name"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "flow_uuid"], name="polls_poll_flow")
        ]
        indexes = [models.Index(fields=["account", "is_active"], name="polls_poll_active")]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        return self.name or self.rapidpro_name


class QuestionType(models.TextChoices):
    OPEN = "open", _("open-ended")
    CATEGORICAL = "categorical", _("multiple choice")
    NUMERIC = "numeric", _("numeric")


class Question(TenantModel, TimeStampedModel):
    """One result of a poll's flow (``flows.results[]``)."""

    poll = models.ForeignKey(Poll, on_delete=models.CASCADE, related_name="questions")
    result_key = models.CharField(max_length=128)
    node_uuids = models.JSONField(default=list, blank=True)
    rapidpro_name = models.CharField(max_length=255)
    name = models.CharField(_("name"), max_length=255, blank=True)
    type = models.CharField(_("type"), max_length=12, choices=QuestionType.choices)
    #: true when a user chose the type (the sync then leaves it alone)
    type_overridden = models.BooleanField(default=False)
    categories = models.JSONField(default=list, blank=True)
    #: numeric rules from the v13 router cases, in order:
    #: [{"category": "1-5", "test": "between", "arguments": [1, 5]}, ...] ("Other" excluded)
    rules = models.JSONField(default=list, blank=True)
    order = models.PositiveIntegerField(default=0)
    is_hidden = models.BooleanField(_("hidden"), default=False)
    is_present = models.BooleanField(default=True)

    class Meta:
        ordering = ["poll", "order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["poll", "result_key"], name="polls_question_key")
        ]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        return self.name or self.rapidpro_name


class PollRunType(models.TextChoices):
    UNIVERSAL = "universal", _("universal")
    REGIONAL = "regional", _("regional")
    PROPAGATED = "propagated", _("propagated")


class PollRun(TenantModel):
    """One conducting of a poll."""

    poll = models.ForeignKey(Poll, on_delete=models.CASCADE, related_name="pollruns")
    type = models.CharField(max_length=12, choices=PollRunType.choices)
    conducted_on = models.DateTimeField(db_index=True)
    #: the account-local day (universal poll runs: one per poll per day)
    local_date = models.DateField()
    panel = models.ForeignKey(
        ContactGroup, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    #: the panel's org unit (regional / propagated); null for universal
    org_unit = models.ForeignKey(
        "registry.OrgUnit", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-conducted_on", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["poll", "local_date"],
                condition=models.Q(type="universal"),
                name="polls_pollrun_universal_day",
            )
        ]
        indexes = [models.Index(fields=["account", "poll", "local_date"], name="polls_run_day")]

    def __str__(self) -> str:
        return f"{self.poll} {self.local_date}"


class FlowStart(TenantModel):
    """A RapidPro flow start made by closedloop; its runs come back with ``start.uuid``."""

    pollrun = models.ForeignKey(PollRun, on_delete=models.CASCADE, related_name="starts")
    uuid = models.CharField(max_length=36)
    status = models.CharField(max_length=20, blank=True)
    contact_count = models.PositiveIntegerField(default=0)
    restart = models.BooleanField(default=False)
    created_on = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "uuid"], name="polls_start_uuid")]

    def __str__(self) -> str:
        return self.uuid


class ResponseStatus(models.TextChoices):
    EMPTY = "E", _("empty")
    PARTIAL = "P", _("partial")
    COMPLETE = "C", _("complete")


class Response(TenantModel):
    """One RapidPro run of one contact; only the newest per contact per poll run is active."""

    # Ingest speed: no single-column index where a composite index below leads with the
    # column (account: polls_response_run; pollrun: polls_resp_run_active; contact:
    # polls_resp_contact); org unit deletes (SET NULL) scan the table, which is rare.
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    pollrun = models.ForeignKey(
        PollRun, on_delete=models.CASCADE, related_name="responses", db_index=False
    )
    poll = models.ForeignKey(Poll, on_delete=models.CASCADE, related_name="+")
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, related_name="responses", db_index=False
    )
    run_uuid = models.CharField(max_length=36)
    status = models.CharField(max_length=1, choices=ResponseStatus.choices)
    is_active = models.BooleanField(default=True)
    created_on = models.DateTimeField()
    #: time of the latest value (or modified_on when there are none)
    updated_on = models.DateTimeField()
    modified_on = models.DateTimeField()
    exited_on = models.DateTimeField(null=True, blank=True)
    exit_type = models.CharField(max_length=20, blank=True)
    local_date = models.DateField()
    #: the contact's panel org unit when the run arrived (denormalized for scoping)
    org_unit = models.ForeignKey(
        "registry.OrgUnit",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )

    class Meta:
        ordering = ["-created_on", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "run_uuid"], name="polls_response_run")
        ]
        indexes = [
            models.Index(fields=["pollrun", "is_active", "status"], name="polls_resp_run_active"),
            models.Index(fields=["contact", "pollrun"], name="polls_resp_contact"),
            models.Index(fields=["account", "poll", "local_date"], name="polls_resp_day"),
            # chart aggregates: responses per run (and panel) counted from the index alone
            models.Index(
                fields=["pollrun", "account", "org_unit", "is_active", "status", "contact"],
                name="polls_resp_cover",
            ),
        ]

    def __str__(self) -> str:
        return self.run_uuid


class Answer(TenantModel):
    """One value of one run. Numeric values are categorised by the flow's numeric rules."""

    # Ingest speed: every index costs each inserted answer, so no single-column FK index;
    # the composite indexes below lead with response (polls_answer_unique), question
    # (polls_ans_chart, polls_ans_cover) and contact (polls_ans_contact_day), which serve
    # those lookups and cascades. Deleting an account, poll run or org unit scans the
    # table instead (rare; a connection delete removes its answers first by question).
    # The denormalized copies (account, poll run, contact, org unit) carry no database
    # constraint: the ingest copies them from the response, whose own foreign keys are
    # enforced, and Django's on_delete still cascades them; each constraint would cost
    # every inserted answer a deferred check at commit (most of PostgreSQL's ingest time).
    account = models.ForeignKey(
        "accounts.Account",
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    response = models.ForeignKey(
        Response, on_delete=models.CASCADE, related_name="answers", db_index=False
    )
    question = models.ForeignKey(
        Question, on_delete=models.CASCADE, related_name="answers", db_index=False
    )
    # denormalized from the response, kept in step by the ingest (charts need no joins)
    pollrun = models.ForeignKey(
        PollRun, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    org_unit = models.ForeignKey(
        "registry.OrgUnit",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    is_active = models.BooleanField(default=True)
    local_date = models.DateField()
    value = models.CharField(max_length=640, blank=True)
    #: the value as a number when it is one
    value_number = models.FloatField(null=True, blank=True)
    #: the same-day sum of this contact's numeric answers to this question (rule ``sum``)
    day_sum = models.FloatField(null=True, blank=True)
    category = models.CharField(max_length=100, blank=True)
    submitted_on = models.DateTimeField()

    class Meta:
        ordering = ["submitted_on", "id"]
        constraints = [
            models.UniqueConstraint(fields=["response", "question"], name="polls_answer_unique")
        ]
        indexes = [
            models.Index(
                fields=["question", "is_active", "pollrun", "org_unit"], name="polls_ans_chart"
            ),
            # same-day sums (all three equal) and a contact's answers (cascades, history)
            models.Index(
                fields=["contact", "question", "local_date"], name="polls_ans_contact_day"
            ),
            # chart aggregates: covering index, so per-run / per-unit GROUP BYs over a
            # question's answers are index-only scans in (poll run, org unit) order
            models.Index(
                fields=[
                    "question",
                    "account",
                    "pollrun",
                    "org_unit",
                    "category",
                    "is_active",
                    "value_number",
                    "day_sum",
                    "contact",
                ],
                name="polls_ans_cover",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.question_id}: {self.value}"


class WordCount(TenantModel):
    """Word frequencies of open answers per question × poll run × org unit (kept by the ingest)."""

    # no single-column account / question indexes: polls_words_q leads with question
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    question = models.ForeignKey(
        Question, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    pollrun = models.ForeignKey(PollRun, on_delete=models.CASCADE, related_name="+")
    org_unit = models.ForeignKey(
        "registry.OrgUnit", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    word = models.CharField(max_length=100)
    count = models.PositiveIntegerField()

    class Meta:
        indexes = [
            models.Index(fields=["question", "pollrun"], name="polls_words_q"),
            # word cloud: summed in word order from the index alone
            models.Index(
                fields=["question", "account", "word", "pollrun", "org_unit", "count"],
                name="polls_words_cover",
            ),
        ]


class Message(TenantModel):
    """A message in RapidPro's message log (incoming and outgoing), for inbox and history."""

    class Direction(models.TextChoices):
        IN = "in", _("incoming")
        OUT = "out", _("outgoing")

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="messages")
    uuid = models.CharField(max_length=36)
    contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.CASCADE, related_name="messages"
    )
    urn = models.CharField(max_length=255, blank=True)
    direction = models.CharField(max_length=3, choices=Direction.choices)
    type = models.CharField(max_length=20, blank=True)
    status = models.CharField(max_length=20, blank=True)
    text = models.TextField(blank=True)
    flow_uuid = models.CharField(max_length=36, blank=True)
    is_archived = models.BooleanField(default=False)
    created_on = models.DateTimeField()
    sent_on = models.DateTimeField(null=True, blank=True)
    modified_on = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_on", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "uuid"], name="polls_message_uuid")
        ]
        indexes = [models.Index(fields=["contact", "created_on"], name="polls_msg_contact")]

    def __str__(self) -> str:
        return self.text[:50]


class Audience(models.TextChoices):
    ALL = "all", _("all participants")
    RESPONDENTS = "respondents", _("respondents")
    NON_RESPONDENTS = "non_respondents", _("non-respondents")
    CONTACT = "contact", _("one contact")
    PANEL = "panel", _("a panel")


class Broadcast(TenantModel):
    """A message sent from closedloop (the message log): who, to whom, what, outcome."""

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        SENT = "sent", _("sent")
        FAILED = "failed", _("failed")

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    text = models.TextField(_("text"))
    audience = models.CharField(max_length=20, choices=Audience.choices)
    pollrun = models.ForeignKey(
        PollRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="broadcasts"
    )
    org_unit = models.ForeignKey(
        "registry.OrgUnit", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    recipients = models.ManyToManyField(Contact, blank=True, related_name="broadcasts")
    recipient_count = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    #: uuids of the RapidPro broadcasts (one per batch of ≤100 contacts)
    rapidpro_uuids = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.text[:50]


class Indicator(TenantModel, TimeStampedModel):
    """Baseline poll/question against a follow-up poll/question over a date range."""

    name = models.CharField(_("name"), max_length=255)
    start_date = models.DateField(_("start date"))
    end_date = models.DateField(_("end date"))
    baseline_question = models.ForeignKey(
        Question, on_delete=models.CASCADE, related_name="+", verbose_name=_("baseline question")
    )
    follow_up_question = models.ForeignKey(
        Question, on_delete=models.CASCADE, related_name="+", verbose_name=_("follow-up question")
    )
    y_axis_title = models.CharField(_("y-axis title"), max_length=100, blank=True)
    goal = models.FloatField(_("goal"), null=True, blank=True)
    #: show the indicator's sandbox sample data instead of real answers
    use_sample_data = models.BooleanField(_("show sample data"), default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-end_date", "name"]

    def __str__(self) -> str:
        return self.name


class SampleAnswer(TenantModel):
    """Sandbox data for trying an indicator; never mixed with real answers."""

    class Kind(models.TextChoices):
        BASELINE = "baseline", _("baseline")
        FOLLOW_UP = "follow_up", _("follow-up")

    indicator = models.ForeignKey(Indicator, on_delete=models.CASCADE, related_name="samples")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    local_date = models.DateField()
    value = models.FloatField()

    class Meta:
        ordering = ["local_date", "id"]
        indexes = [models.Index(fields=["indicator", "kind", "local_date"], name="polls_sample")]
