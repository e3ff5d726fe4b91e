"""Word-cloud tokenization: stop words per contact language, numbers, short tokens, scripts."""

from __future__ import annotations

import pytest

from closedloop.polls.words import language_name, tokenize


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        # "is" and "good" are English stop words; numbers and one-letter tokens go
        ("Clean water is GOOD, 42 times! x", "eng", ["clean", "water", "times"]),
        ("The water, the water!", "eng", ["water", "water"]),
        # French: "l'" elided, "est" and "très" are stop words
        ("L'eau est très sale", "fra", ["eau", "sale"]),
        ("El agua está sucia y fría", "spa", ["agua", "sucia", "fría"]),
        ("A água está suja", "por", ["água", "suja"]),
        # Arabic: "في" (in) is a stop word; Arabic-Indic digits are numbers
        ("الماء نظيف جدا في القرية ١٢", "ara", ["الماء", "نظيف", "جدا", "القرية"]),
        # tatweel (kashida) does not split or change a word
        ("المــاء", "ara", ["الماء"]),
        # no Swahili list in the package: English stop words apply ("is", "ni" dropped);
        # a number glued to letters is a word
        ("Maji ni safi is 3km", "swa", ["maji", "safi", "3km"]),
        ("don't worry, clinic’s nurse", "eng", ["worry", "clinic", "nurse"]),
        ("", "eng", []),
        (None, "eng", []),
    ],
)
def test_tokenize(text: str, language: str, expected: list[str]) -> None:
    assert tokenize(text, language) == expected


def test_language_codes() -> None:
    assert language_name("eng") == "english"
    assert language_name("fra") == "french"
    assert language_name("ara") == "arabic"
    assert language_name("FR") == "french"
    assert language_name("kin") == "english"
    assert language_name("") == "english"
    assert language_name(None) == "english"
