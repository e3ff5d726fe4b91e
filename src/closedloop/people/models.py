from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from closedloop.core.models import TenantModel, TimeStampedModel


class Cohort(TenantModel, TimeStampedModel):
    """A named group of people (a class, a RapidPro contact group, a training batch)."""

    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "name"], name="cohort_name_unique")
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CustomField(TenantModel, TimeStampedModel):
    """A typed field people of this account may carry, stored in ``Person.fields``."""

    class Type(models.TextChoices):
        TEXT = "text", _("Text")
        NUMBER = "number", _("Number")
        DATE = "date", _("Date")
        BOOLEAN = "boolean", _("Yes/no")

    key = models.SlugField(_("key"), max_length=64)
    label = models.CharField(_("label"), max_length=200)
    type = models.CharField(_("type"), max_length=10, choices=Type.choices, default=Type.TEXT)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "key"], name="customfield_key_unique")
        ]
        ordering = ["label"]

    def __str__(self) -> str:
        return self.label


class Person(TenantModel, TimeStampedModel):
    """A learner, teacher, health worker or contact, shared by every module."""

    name = models.CharField(_("name"), max_length=255)
    org_unit = models.ForeignKey(
        "registry.OrgUnit",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="people",
        verbose_name=_("org unit"),
    )
    cohorts = models.ManyToManyField(Cohort, blank=True, related_name="people")
    language = models.CharField(_("language"), max_length=10, blank=True)
    fields = models.JSONField(_("custom fields"), default=dict, blank=True)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        indexes = [
            models.Index(fields=["account", "name"], name="person_name"),
            models.Index(fields=["account", "org_unit"], name="person_orgunit"),
        ]
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class Identifier(TenantModel):
    """One way to recognise a person: an email, a phone URN, or an id in another system."""

    class Kind(models.TextChoices):
        EMAIL = "email", _("Email")
        PHONE = "phone", _("Phone URN")
        EXTERNAL = "external", _("External id")

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="identifiers")
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    system = models.CharField(
        _("system"), max_length=60, blank=True, help_text=_("e.g. rapidpro, moodle")
    )
    value = models.CharField(_("value"), max_length=255)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "kind", "system", "value"], name="identifier_unique"
            )
        ]
        indexes = [models.Index(fields=["account", "value"], name="identifier_value")]

    def __str__(self) -> str:
        return f"{self.system}:{self.value}" if self.system else self.value
