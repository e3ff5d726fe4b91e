from __future__ import annotations

import pytest

from closedloop.people.services import person_create


@pytest.fixture
def people(world):
    """Ann in North's school, Sol in South's clinic, Nia with no org unit."""
    from closedloop.core.tenancy import account_scope

    with account_scope(world.account):
        ann = person_create(
            account=world.account,
            actor=None,
            name="Ann North",
            org_unit=world.school_n1,
            emails=["ann@example.org"],
            phones=["+250788000001"],
        )
        sol = person_create(
            account=world.account,
            actor=None,
            name="Sol South",
            org_unit=world.school_s1,
            emails=["sol@example.org"],
        )
        nia = person_create(account=world.account, actor=None, name="Nia Nowhere")
    return {"ann": ann, "sol": sol, "nia": nia}
