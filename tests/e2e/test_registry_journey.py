"""An administrator's journey through the registry, in Chromium, on the real stack."""

from __future__ import annotations

import pytest

from closedloop.core.tenancy import account_scope
from closedloop.registry.models import OrgUnit

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

IMPORT_CSV = (
    "region,district,name,code,lat,lon\n"
    "Eastmark,Riverbend,Riverbend Primary School,E2E-1,-1.10,30.40\n"
    "Eastmark,Riverbend,Riverbend Health Centre,E2E-2,-1.12,30.42\n"
    "Eastmark,Hillcrest,Hillcrest Secondary School,E2E-3,-1.30,30.55\n"
)


def test_admin_browses_imports_watches_the_job_and_sees_the_map(
    world, new_page, log_in, shot, tmp_path
):
    page = new_page()
    log_in(page, world.alice.email, world.password)
    shot(page, "01-home")

    # the tree: expand the country and see its regions
    page.goto("/registry/")
    country = page.locator(f'[data-testid="tree-node"][data-unit-id="{world.country.pk}"]')
    country.locator('[data-testid="tree-toggle"]').first.click()
    north = page.locator(f'[data-testid="tree-node"][data-unit-id="{world.region_north.pk}"]')
    north.wait_for()
    assert "North" in north.inner_text()
    shot(page, "02-registry-tree")

    # step 1 of the import: upload a CSV
    upload = tmp_path / "units.csv"
    upload.write_text(IMPORT_CSV, encoding="utf-8")
    page.goto("/registry/import/")
    page.set_input_files('[data-testid="import-file"]', str(upload))
    shot(page, "03-import-upload")
    page.click('[data-testid="import-upload-submit"]')

    # step 2: map the columns and start
    page.wait_for_selector('[data-testid="import-mapping-form"]')
    page.select_option('[data-testid="map-parent-1"]', "region")
    page.fill("#id_type_1", "Region")
    page.select_option('[data-testid="map-parent-2"]', "district")
    page.fill("#id_type_2", "District")
    page.select_option('[data-testid="map-name"]', "name")
    page.fill("#id_leaf_type", "School")
    page.select_option("#id_lat", "lat")
    page.select_option("#id_lon", "lon")
    shot(page, "04-import-mapping")
    page.click('[data-testid="import-start"]')

    # the job page: the progress bar reaches 100 %
    page.wait_for_url("**/jobs/*/")
    shot(page, "05-job-started")
    progress = page.locator('[data-testid="job-progress"]')
    page.wait_for_function(
        """() => {
            const bar = document.querySelector('[data-testid="job-progress"]');
            return bar && bar.getAttribute('aria-valuenow') === '100';
        }"""
    )
    assert progress.get_attribute("aria-valuenow") == "100"
    shot(page, "05-job-finished")

    # the map of the imported region shows its three units
    with account_scope(world.account):
        region = OrgUnit.objects.get(name="Eastmark")
        expected = OrgUnit.objects.filter(
            path__startswith=region.path, latitude__isnull=False
        ).count()
    assert expected == 3
    page.goto(f"/registry/map/?root={region.pk}")
    page.wait_for_selector('[data-testid="orgunit-map"][data-feature-count]')
    count = page.get_attribute('[data-testid="orgunit-map"]', "data-feature-count")
    assert int(count or 0) >= expected
    shot(page, "06-map")


def test_the_login_page_in_arabic_is_right_to_left(world, new_page, shot):
    page = new_page(locale="ar")
    page.goto("/accounts/login/")
    assert page.get_attribute("html", "dir") == "rtl"
    assert page.get_attribute("html", "lang") == "ar"
    shot(page, "07-login-arabic")


def test_the_home_page_fits_a_phone_without_horizontal_scrolling(world, new_page, log_in, shot):
    page = new_page(viewport={"width": 390, "height": 844})
    log_in(page, world.alice.email, world.password)
    page.goto("/")
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    shot(page, "08-home-phone")


def test_a_supervisor_cannot_open_a_unit_outside_his_subtree(world, new_page, log_in, shot):
    page = new_page()
    log_in(page, world.sam.email, world.password)
    inside = page.goto(f"/registry/{world.school_n1.pk}/")
    assert inside is not None and inside.status == 200
    outside = page.goto(f"/registry/{world.school_s1.pk}/")
    assert outside is not None and outside.status == 404
    shot(page, "09-supervisor-404")
