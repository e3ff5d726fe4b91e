"""Words of open-ended answers, for word clouds.

``tokenize(text, language)`` lower-cases, splits on anything that is not a letter, a digit
or a joining mark (so Arabic, Devanagari and accented Latin words stay whole), and drops
numbers, one-letter tokens and the stop words of the contact's language (the ``stop_words``
package; RapidPro gives ISO-639-3 codes such as ``eng``, ``fra``, ``ara``; a language the
package has no list for falls back to English).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from stop_words import get_stop_words

#: ISO-639-3 (RapidPro) → stop_words language name
ISO3_LANGUAGES: dict[str, str] = {
    "ara": "arabic",
    "bul": "bulgarian",
    "cat": "catalan",
    "ces": "czech",
    "cze": "czech",
    "dan": "danish",
    "nld": "dutch",
    "dut": "dutch",
    "eng": "english",
    "fin": "finnish",
    "fra": "french",
    "fre": "french",
    "deu": "german",
    "ger": "german",
    "guj": "gujarati",
    "heb": "hebrew",
    "hin": "hindi",
    "hun": "hungarian",
    "ind": "indonesian",
    "msa": "malaysian",
    "may": "malaysian",
    "zsm": "malaysian",
    "ita": "italian",
    "nor": "norwegian",
    "nob": "norwegian",
    "pol": "polish",
    "por": "portuguese",
    "ron": "romanian",
    "rum": "romanian",
    "rus": "russian",
    "slk": "slovak",
    "slo": "slovak",
    "spa": "spanish",
    "swe": "swedish",
    "tur": "turkish",
    "ukr": "ukrainian",
    "vie": "vietnamese",
    "fas": "persian",
    "per": "persian",
    "pes": "persian",
    "ell": "greek",
    "gre": "greek",
    "zho": "chinese",
    "chi": "chinese",
    "jpn": "japanese",
    "kor": "korean",
}
#: ISO-639-1 codes, for contacts whose language was set that way
ISO1_LANGUAGES: dict[str, str] = {
    "ar": "arabic",
    "en": "english",
    "fr": "french",
    "es": "spanish",
    "pt": "portuguese",
    "de": "german",
    "it": "italian",
    "nl": "dutch",
    "ru": "russian",
    "tr": "turkish",
    "fa": "persian",
    "id": "indonesian",
    "hi": "hindi",
}
DEFAULT_LANGUAGE = "english"
MAX_WORD_LENGTH = 100

# letters (any script) and combining marks (Arabic harakat, Devanagari vowel signs...);
# apostrophes inside a word are kept ("don't"), other punctuation separates words
_TOKEN = re.compile(r"[^\W_](?:[^\W_]|['’](?=[^\W_]))*", re.UNICODE)
_TATWEEL = "\u0640"


def language_name(language: str | None) -> str:
    """The stop-word list name for a RapidPro language code (English when unknown)."""
    code = (language or "").strip().lower()
    return ISO3_LANGUAGES.get(code) or ISO1_LANGUAGES.get(code) or DEFAULT_LANGUAGE


@lru_cache(maxsize=64)
def stop_words_for(language: str | None) -> frozenset[str]:
    name = language_name(language)
    try:
        words = get_stop_words(name)
    except Exception:  # a list missing from the installed package: fall back to English
        words = get_stop_words(DEFAULT_LANGUAGE)
    return frozenset(_normalize(w) for w in words)


def _normalize(text: str) -> str:
    return unicodedata.normalize("NFC", text).replace(_TATWEEL, "").casefold()


def _is_number(token: str) -> bool:
    return any(ch.isdigit() for ch in token) and not any(ch.isalpha() for ch in token)


def tokenize(text: str | None, language: str | None = None) -> list[str]:
    """The meaningful words of ``text``, lower-cased, in order (duplicates kept)."""
    if not text:
        return []
    stop = stop_words_for(language)
    words: list[str] = []
    for match in _TOKEN.finditer(_normalize(text)):
        token = match.group().replace("’", "'")
        if token in stop:
            continue
        # elisions and contractions not in the list: "l'eau" → "eau"
        parts = token.split("'") if "'" in token else [token]
        for part in parts:
            if len(part) < 2 or len(part) > MAX_WORD_LENGTH or part in stop:
                continue
            if _is_number(part):
                continue
            words.append(part)
    return words


@lru_cache(maxsize=50_000)
def tokenize_cached(text: str, language: str) -> tuple[str, ...]:
    """``tokenize`` memoised: open answers repeat a lot ("yes", "good water")."""
    return tuple(tokenize(text, language))
