"""The interface speaks French and Arabic (right to left), and the catalogues stay complete."""

from __future__ import annotations

import ast
import gettext
import html
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import translation

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


@dataclass
class Entry:
    """One message of a .po file (a small reader, so the tests need no extra package)."""

    msgctxt: str | None = None
    msgid: str = ""
    msgid_plural: str | None = None
    msgstr: str = ""
    msgstr_plural: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)

    def translated(self) -> bool:
        if self.msgid_plural is not None:
            return bool(self.msgstr_plural) and all(self.msgstr_plural.values())
        return bool(self.msgstr)


KEYWORD = re.compile(r'^(msgctxt|msgid_plural|msgid|msgstr)(?:\[(\d+)\])?\s+(".*")$')


def read_po(path: Path) -> tuple[dict[str, str], list[Entry]]:
    """The header fields and the entries of a .po file written by the gettext tools
    (entries are separated by blank lines; obsolete ``#~`` entries are skipped)."""
    entries: list[Entry] = []
    for block in re.split(r"\n\s*\n", path.read_text(encoding="utf-8")):
        entry, target, index = Entry(), "", None
        for line in block.splitlines():
            if line.startswith("#,"):
                entry.flags |= {flag.strip() for flag in line[2:].split(",")}
            elif match := KEYWORD.match(line):
                target, number, literal = match.groups()
                index = int(number) if number is not None else None
                add_text(entry, target, index, ast.literal_eval(literal))
            elif line.startswith('"'):
                add_text(entry, target, index, ast.literal_eval(line))
        if "#~" not in block and (entry.msgid or entry.msgstr):
            entries.append(entry)
    header, messages = entries[0], entries[1:]
    fields = dict(part.split(": ", 1) for part in header.msgstr.splitlines() if ": " in part)
    return fields, messages


def add_text(entry: Entry, target: str, index: int | None, text: str) -> None:
    if index is not None:
        entry.msgstr_plural[index] = entry.msgstr_plural.get(index, "") + text
    else:
        setattr(entry, target, (getattr(entry, target) or "") + text)


def catalogue(lang: str) -> tuple[dict[str, str], list[Entry]]:
    return read_po(LOCALE_DIR / lang / "LC_MESSAGES" / "django.po")


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
        assert translation.ngettext("%(n)s child", "%(n)s children", 1) % {"n": 1} == "1 sous-unité"
        assert (
            translation.ngettext("%(n)s child", "%(n)s children", 3) % {"n": 3} == "3 sous-unités"
        )


@pytest.mark.parametrize("lang", LANGS)
def test_the_catalogue_is_complete_and_has_no_fuzzy_entry(lang):
    fields, entries = catalogue(lang)
    assert len(entries) > 100
    untranslated = [e.msgid for e in entries if not e.translated()]
    fuzzy = [e.msgid for e in entries if "fuzzy" in e.flags]
    assert not untranslated, f"{len(untranslated)} untranslated in {lang}: {untranslated[:10]}"
    assert not fuzzy, f"{len(fuzzy)} fuzzy in {lang}: {fuzzy[:10]}"
    assert fields["Language"] == lang
    assert "charset=UTF-8" in fields["Content-Type"]
    nplurals = {"fr": 2, "ar": 6}[lang]
    assert fields["Plural-Forms"].startswith(f"nplurals={nplurals};")
    for entry in entries:
        if entry.msgid_plural is not None:
            assert sorted(entry.msgstr_plural) == list(range(nplurals)), entry.msgid


PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|%[sd]|\{\w*\}")


@pytest.mark.parametrize("lang", LANGS)
def test_translations_keep_every_placeholder(lang):
    for entry in catalogue(lang)[1]:
        wanted = set(PLACEHOLDER.findall(entry.msgid))
        if entry.msgid_plural is not None:
            # a form for exactly one or two may spell the number out
            wanted |= set(PLACEHOLDER.findall(entry.msgid_plural))
            for form in entry.msgstr_plural.values():
                assert set(PLACEHOLDER.findall(form)) <= wanted, (entry.msgid, form)
        else:
            assert set(PLACEHOLDER.findall(entry.msgstr)) == wanted, (entry.msgid, entry.msgstr)


@pytest.mark.parametrize("lang", LANGS)
def test_the_compiled_catalogue_matches_its_source(lang):
    mo = LOCALE_DIR / lang / "LC_MESSAGES" / "django.mo"
    assert mo.exists(), f"run compilemessages: {mo} is missing"
    with mo.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)._catalog  # type: ignore[attr-defined]
    stale = []
    for entry in catalogue(lang)[1]:
        key = entry.msgid if entry.msgctxt is None else f"{entry.msgctxt}\x04{entry.msgid}"
        if entry.msgid_plural is None:
            ok = compiled.get(key) == entry.msgstr
        else:
            ok = all(compiled.get((key, n)) == text for n, text in entry.msgstr_plural.items())
        if not ok:
            stale.append(entry.msgid)
    assert not stale, f"run compilemessages: {len(stale)} strings differ in {mo}: {stale[:5]}"


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


def test_every_translatable_string_in_the_code_is_in_the_catalogues(
    settings, tmp_path, monkeypatch
):
    """Extract the strings afresh (as makemessages does) into a scratch copy of the package:
    a string added without re-running makemessages and translating it fails here."""
    from django.core.management import call_command

    if not shutil.which("xgettext"):
        pytest.skip("gettext is not installed")
    package = LOCALE_DIR.parent
    copy = tmp_path / "closedloop"
    skip = shutil.ignore_patterns("static_vendor", "locale", "tests", "migrations", "__pycache__")
    shutil.copytree(package, copy, ignore=skip)
    settings.LOCALE_PATHS = [tmp_path / "locale"]
    monkeypatch.chdir(copy)
    call_command("makemessages", locale=["fr"], verbosity=0, no_obsolete=True)
    _fields, extracted = read_po(tmp_path / "locale" / "fr" / "LC_MESSAGES" / "django.po")
    wanted = {(e.msgctxt, e.msgid) for e in extracted}
    assert len(wanted) > 100, "makemessages found almost nothing: the extraction is broken"
    for lang in LANGS:
        have = {(e.msgctxt, e.msgid) for e in catalogue(lang)[1] if e.translated()}
        missing = sorted(msgid for _ctx, msgid in wanted - have)
        assert not missing, (
            f"{len(missing)} strings are not translated in {lang}: {missing[:8]}. "
            "Run makemessages, translate them, then compilemessages."
        )
