"""The interface speaks French and Arabic (right to left), and the catalogues stay complete."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import translation

polib = pytest.importorskip("polib")

LOCALE_DIR = Path(settings.LOCALE_PATHS[0])
LANGS = ("fr", "ar")

# Words each key page must show in each language, and the English they replace.
KEY_LABELS: dict[str, dict[str, list[str]]] = {
    "/": {
        "fr": ["Unités d'organisation par type", "Tâches récentes", "Registre", "Personnes"],
        "ar": ["الوحدات التنظيمية حسب النوع", "المهام الأخيرة", "السجل", "الأشخاص"],
        "en": ["Org units by type", "Recent jobs"],
    },
    "/registry/": {
        "fr": ["Rechercher par nom, code ou référence", "Exporter", "Importer"],
        "ar": ["البحث بالاسم أو الرمز أو المرجع", "تصدير", "استيراد"],
        "en": ["Search by name, code or reference"],
    },
    "/jobs/": {
        "fr": ["Aucune tâche pour l'instant.", "Tâches"],
        "ar": ["لا توجد مهام بعد.", "المهام"],
        "en": ["No jobs yet.", "Imports, exports and other long operations"],
    },
    "/accounts/members/": {
        "fr": ["Utilisateurs de Ministry A", "Ajouter un utilisateur", "Dernière connexion"],
        "ar": ["مستخدمو Ministry A", "إضافة مستخدم", "آخر تسجيل دخول"],
        "en": ["Users of Ministry A", "Add a user", "Last login"],
    },
}
LOGIN = {"fr": "Se connecter", "ar": "تسجيل الدخول"}


def text_of(response) -> str:
    """The page as a reader sees it: entities decoded, whitespace collapsed."""
    return re.sub(r"[ \t\r\n]+", " ", html.unescape(response.content.decode()))


@pytest.fixture(autouse=True)
def english_after_each_test():
    yield
    translation.activate(settings.LANGUAGE_CODE)


@pytest.mark.parametrize("lang", LANGS)
def test_it_shows_the_login_page_in_the_browser_language(client, db, lang):
    r = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE=lang)
    page = text_of(r)
    assert r.status_code == 200
    assert f'lang="{lang}"' in page
    assert LOGIN[lang] in page
    assert "Log in" not in page
    assert "Forgot your password?" not in page


def test_it_shows_the_login_page_in_the_cookie_language_over_the_browser_one(client, db):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "fr"
    page = text_of(client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="ar"))
    assert "Mot de passe oublié\u00a0?" in page
    assert 'dir="ltr"' in page


def test_it_renders_arabic_right_to_left_with_the_rtl_stylesheet(client, db):
    page = text_of(client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="ar"))
    assert re.search(r'<html lang="ar" dir="rtl"', page)
    assert "bootstrap.rtl.min.css" in page
    assert "bootstrap/bootstrap.min.css" not in page
    assert "نسيت كلمة المرور؟" in page


def test_it_keeps_english_left_to_right(client, db):
    page = text_of(client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="en"))
    assert 'dir="ltr"' in page
    assert "bootstrap/bootstrap.min.css" in page
    assert "Log in" in page


def test_it_switches_language_with_the_set_language_form(client, db):
    r = client.post("/i18n/setlang/", {"language": "ar", "next": "/accounts/login/"})
    assert r.status_code == 302
    assert r["Location"] == "/accounts/login/"
    assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == "ar"
    assert LOGIN["ar"] in text_of(client.get("/accounts/login/"))

    client.post("/i18n/setlang/", {"language": "fr", "next": "/accounts/login/"})
    page = text_of(client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="ar"))
    assert LOGIN["fr"] in page
    assert LOGIN["ar"] not in page


def test_it_ignores_an_unknown_language(client, db):
    client.post("/i18n/setlang/", {"language": "xx", "next": "/accounts/login/"})
    assert settings.LANGUAGE_COOKIE_NAME not in client.cookies
    assert "Log in" in text_of(client.get("/accounts/login/"))


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("url", list(KEY_LABELS))
def test_it_translates_the_key_pages_for_alice(world, client, url, lang):
    client.force_login(world.alice)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    r = client.get(url)
    assert r.status_code == 200
    page = text_of(r)
    for label in KEY_LABELS[url][lang]:
        assert label in page, f"{label!r} missing from {url} in {lang}"
    for english in KEY_LABELS[url]["en"]:
        assert english not in page, f"untranslated {english!r} on {url} in {lang}"


def test_it_translates_the_navigation_and_the_language_menu(world, client):
    client.force_login(world.alice)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ar"
    page = text_of(client.get("/"))
    for label in ("السجل", "الأشخاص", "المهام", "المستخدمون", "تسجيل الخروج"):
        assert label in page
    assert translation.get_language_info("ar")["name_local"] in page  # the language menu
    assert ">Registry<" not in page and ">Log out<" not in page


def test_it_uses_every_arabic_plural_form():
    with translation.override("ar"):
        forms = {
            n: translation.ngettext("%(n)s child", "%(n)s children", n) % {"n": n}
            for n in (0, 1, 2, 5, 11, 100)
        }
    assert len(set(forms.values())) == 6, forms
    with translation.override("fr"):
        assert translation.ngettext("%(n)s child", "%(n)s children", 1) % {"n": 1} == "1 enfant"
        assert translation.ngettext("%(n)s child", "%(n)s children", 3) % {"n": 3} == "3 enfants"


@pytest.mark.parametrize("lang", LANGS)
def test_the_catalogue_is_complete_and_has_no_fuzzy_entry(lang):
    po = polib.pofile(str(LOCALE_DIR / lang / "LC_MESSAGES" / "django.po"))
    untranslated = [e.msgid for e in po.untranslated_entries()]
    fuzzy = [e.msgid for e in po.fuzzy_entries()]
    assert not untranslated, f"{len(untranslated)} untranslated in {lang}: {untranslated[:10]}"
    assert not fuzzy, f"{len(fuzzy)} fuzzy in {lang}: {fuzzy[:10]}"
    assert po.metadata["Language"] == lang
    assert "charset=UTF-8" in po.metadata["Content-Type"]
    nplurals = {"fr": "nplurals=2", "ar": "nplurals=6"}[lang]
    assert po.metadata["Plural-Forms"].startswith(nplurals)
    for entry in po:
        if entry.msgid_plural:
            assert all(entry.msgstr_plural.values()), entry.msgid


PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|%[sd]|\{\w*\}")


@pytest.mark.parametrize("lang", LANGS)
def test_translations_keep_every_placeholder(lang):
    po = polib.pofile(str(LOCALE_DIR / lang / "LC_MESSAGES" / "django.po"))
    for entry in po.translated_entries():
        wanted = set(PLACEHOLDER.findall(entry.msgid))
        if entry.msgid_plural:
            # a form for exactly one or two may spell the number out
            wanted |= set(PLACEHOLDER.findall(entry.msgid_plural))
            for form in entry.msgstr_plural.values():
                assert set(PLACEHOLDER.findall(form)) <= wanted, (entry.msgid, form)
        else:
            assert set(PLACEHOLDER.findall(entry.msgstr)) == wanted, (entry.msgid, entry.msgstr)


@pytest.mark.parametrize("lang", LANGS)
def test_the_compiled_catalogue_is_newer_than_its_source(lang):
    folder = LOCALE_DIR / lang / "LC_MESSAGES"
    po, mo = folder / "django.po", folder / "django.mo"
    assert mo.exists(), f"run compilemessages: {mo} is missing"
    source = polib.pofile(str(po))
    compiled = polib.mofile(str(mo))
    compiled_text = {e.msgid: e.msgstr for e in compiled}
    stale = [
        e.msgid
        for e in source.translated_entries()
        if e.msgid not in compiled_text
        or (not e.msgid_plural and compiled_text[e.msgid] != e.msgstr)
    ]
    assert not stale, f"run compilemessages: {len(stale)} strings missing from {mo}"


@pytest.mark.parametrize("lang", LANGS)
def test_msgfmt_accepts_the_catalogue(lang):
    msgfmt = shutil.which("msgfmt")
    if not msgfmt:
        pytest.skip("gettext is not installed")
    po = LOCALE_DIR / lang / "LC_MESSAGES" / "django.po"
    result = subprocess.run(
        [msgfmt, "--check", "-o", "/dev/null", str(po)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
