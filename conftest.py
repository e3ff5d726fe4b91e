"""The test world: Alice owns account A; Bob is a member of A; Sam supervises one region
of A; Charlie is an admin of another account B and must never see anything of A."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from closedloop.core.testing.factories import (  # noqa: E402
    PASSWORD,
    AccountFactory,
    MembershipFactory,
    UserFactory,
    make_type,
    make_unit,
)


@dataclass
class World:
    account: object
    other_account: object
    alice: object  # admin of account
    bob: object  # viewer of account
    sam: object  # supervisor of account, scoped to region_north
    charlie: object  # admin of other_account
    alice_membership: object
    bob_membership: object
    sam_membership: object
    charlie_membership: object
    country: object
    region_north: object
    region_south: object
    district_n1: object
    district_s1: object
    school_n1: object
    school_s1: object
    other_root: object
    password: str = PASSWORD


@pytest.fixture
def world(db):
    from closedloop.accounts.models import Role
    from closedloop.core.tenancy import scopes_disabled

    with scopes_disabled():
        account = AccountFactory(name="Ministry A", slug="ministry-a")
        other = AccountFactory(name="Ministry B", slug="ministry-b")
        alice = UserFactory(email="alice@example.org", full_name="Alice Admin")
        bob = UserFactory(email="bob@example.org", full_name="Bob Viewer")
        sam = UserFactory(email="sam@example.org", full_name="Sam Supervisor")
        charlie = UserFactory(email="charlie@example.org", full_name="Charlie Other")
        am = MembershipFactory(account=account, user=alice, role=Role.ADMIN)
        bm = MembershipFactory(account=account, user=bob, role=Role.VIEWER)
        sm = MembershipFactory(account=account, user=sam, role=Role.SUPERVISOR)
        cm = MembershipFactory(account=other, user=charlie, role=Role.ADMIN)
        t_country = make_type(account, "Country", 1)
        t_region = make_type(account, "Region", 2)
        t_district = make_type(account, "District", 3)
        t_school = make_type(account, "School", 4)
        country = make_unit(account, "Atlantis", type=t_country)
        north = make_unit(account, "North", country, type=t_region)
        south = make_unit(account, "South", country, type=t_region)
        d_n1 = make_unit(account, "Northvale", north, type=t_district)
        d_s1 = make_unit(account, "Southport", south, type=t_district)
        s_n1 = make_unit(
            account,
            "Northvale Primary",
            d_n1,
            type=t_school,
            latitude=1.5,
            longitude=30.1,
            code="NP1",
        )
        s_s1 = make_unit(
            account,
            "Southport Clinic",
            d_s1,
            type=t_school,
            latitude=-1.2,
            longitude=29.8,
            code="SC1",
        )
        sm.scope.set([north])
        other_root = make_unit(other, "Elsewhere", type=make_type(other, "Country", 1))
    return World(
        account=account,
        other_account=other,
        alice=alice,
        bob=bob,
        sam=sam,
        charlie=charlie,
        alice_membership=am,
        bob_membership=bm,
        sam_membership=sm,
        charlie_membership=cm,
        country=country,
        region_north=north,
        region_south=south,
        district_n1=d_n1,
        district_s1=d_s1,
        school_n1=s_n1,
        school_s1=s_s1,
        other_root=other_root,
    )


@pytest.fixture
def client_for(client):
    """``client_for(user)``: a logged-in Django test client."""

    def login(user):
        client.force_login(user)
        return client

    return login


@pytest.fixture
def scoped(world):
    """Open the scope of account A for direct ORM use in a test."""
    from closedloop.core.tenancy import account_scope

    with account_scope(world.account):
        yield world
