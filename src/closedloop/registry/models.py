from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from closedloop.core.models import TenantModel, TimeStampedModel
from closedloop.registry.paths import PathField, upper_bound


class DataSource(TenantModel, TimeStampedModel):
    """Where a pyramid comes from (a ministry list, DHIS2, …). Names are unique per account."""

    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    is_default = models.BooleanField(_("default"), default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "name"], name="datasource_name_unique")
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SourceVersion(TenantModel, TimeStampedModel):
    """A numbered version of a data source's pyramid."""

    source = models.ForeignKey(DataSource, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField(_("number"))
    description = models.TextField(_("description"), blank=True)
    is_default = models.BooleanField(_("default"), default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "number"], name="version_number_unique")
        ]
        ordering = ["source__name", "number"]

    def __str__(self) -> str:
        return f"{self.source.name} v{self.number}"


class OrgUnitType(TenantModel, TimeStampedModel):
    name = models.CharField(_("name"), max_length=100)
    short_name = models.CharField(_("short name"), max_length=30, blank=True)
    depth = models.PositiveSmallIntegerField(_("depth"), null=True, blank=True)
    sub_types = models.ManyToManyField(
        "self",
        symmetrical=False,
        blank=True,
        related_name="parent_types",
        verbose_name=_("allowed sub-types"),
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "name"], name="orgunittype_name_unique")
        ]
        ordering = ["depth", "name"]

    def __str__(self) -> str:
        return self.name


class ValidationStatus(models.TextChoices):
    NEW = "new", _("New")
    VALID = "valid", _("Valid")
    REJECTED = "rejected", _("Rejected")


class OrgUnit(TenantModel, TimeStampedModel):
    """A place in the pyramid: country, region, district, school, clinic …"""

    version = models.ForeignKey(SourceVersion, on_delete=models.PROTECT, related_name="units")
    name = models.CharField(_("name"), max_length=255)
    type = models.ForeignKey(
        OrgUnitType,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="units",
        verbose_name=_("type"),
    )
    parent = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="children",
        verbose_name=_("parent"),
    )
    path = PathField(max_length=255, db_index=False, editable=False)
    depth = models.PositiveSmallIntegerField(default=1, editable=False)
    code = models.CharField(_("code"), max_length=100, blank=True)
    ref = models.CharField(_("external reference"), max_length=200, blank=True)
    validation_status = models.CharField(
        _("validation status"),
        max_length=10,
        choices=ValidationStatus.choices,
        default=ValidationStatus.NEW,
    )
    latitude = models.FloatField(_("latitude"), null=True, blank=True)
    longitude = models.FloatField(_("longitude"), null=True, blank=True)
    altitude = models.FloatField(_("altitude"), null=True, blank=True)
    accuracy = models.FloatField(_("accuracy (m)"), null=True, blank=True)
    geometry = models.JSONField(_("geometry (GeoJSON)"), null=True, blank=True)
    simplified_geometry = models.JSONField(null=True, blank=True, editable=False)
    bbox_min_lon = models.FloatField(null=True, blank=True, editable=False)
    bbox_min_lat = models.FloatField(null=True, blank=True, editable=False)
    bbox_max_lon = models.FloatField(null=True, blank=True, editable=False)
    bbox_max_lat = models.FloatField(null=True, blank=True, editable=False)
    opening_date = models.DateField(_("opening date"), null=True, blank=True)
    closing_date = models.DateField(_("closing date"), null=True, blank=True)
    aliases = models.JSONField(_("aliases"), default=list, blank=True)
    extra = models.JSONField(_("extra fields"), default=dict, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["account", "path"], name="orgunit_account_path"),
            models.Index(fields=["account", "parent", "name"], name="orgunit_parent_name"),
            models.Index(fields=["account", "ref"], name="orgunit_ref"),
            models.Index(fields=["account", "code"], name="orgunit_code"),
            models.Index(fields=["account", "type"], name="orgunit_type"),
        ]
        ordering = ["path"]

    def __str__(self) -> str:
        return self.name

    @property
    def path_upper(self) -> str:
        return upper_bound(self.path)

    @property
    def has_point(self) -> bool:
        return self.latitude is not None and self.longitude is not None


class Group(TenantModel, TimeStampedModel):
    name = models.CharField(_("name"), max_length=200)
    code = models.CharField(_("code"), max_length=100, blank=True)
    units = models.ManyToManyField(OrgUnit, blank=True, related_name="groups")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "name"], name="group_name_unique")
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
