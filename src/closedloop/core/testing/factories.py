"""factory_boy factories shared by every app's tests."""

from __future__ import annotations

from typing import Any

import factory

from closedloop.accounts.models import Account, Membership, Role, User
from closedloop.people.models import Person
from closedloop.registry.models import OrgUnit, OrgUnitType

PASSWORD = "correct horse battery"


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Account {n}")
    slug = factory.Sequence(lambda n: f"account-{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("email",)
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.org")
    full_name = factory.Faker("name")

    @factory.post_generation
    def password(obj: User, create: bool, extracted: str | None, **kwargs: object) -> None:  # noqa: N805
        obj.set_password(extracted or PASSWORD)
        if create:
            obj.save(update_fields=["password"])


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    account = factory.SubFactory(AccountFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.ADMIN


def make_type(account: Account, name: str, depth: int) -> OrgUnitType:
    return OrgUnitType.objects.get_or_create(account=account, name=name, defaults={"depth": depth})[
        0
    ]


def make_unit(account: Account, name: str, parent: OrgUnit | None = None, **fields: Any) -> OrgUnit:
    """Create a unit through the real service, so paths and audit are right."""
    from closedloop.registry.services import orgunit_create

    return orgunit_create(account=account, actor=None, name=name, parent=parent, **fields)


def make_person(account: Account, name: str, org_unit: OrgUnit | None = None) -> Person:
    return Person.objects.create(account=account, name=name, org_unit=org_unit)
