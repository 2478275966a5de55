"""Free text from clients and cameras: what a field may hold, and how a terminal is shown it."""

from __future__ import annotations

import pytest

from gateway.text import check_text, clip, display, excerpt


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("CSU Marseille, op\n7", "contains U+000A (a control character) at position 18"),
        ("call 4512\r\nFAKE", "contains U+000D (a control character) at position 10"),
        ("a\tb", "contains U+0009 (a control character) at position 2"),
        ("\x1b[2Jwiped", "contains U+001B (a control character) at position 1"),
        ("\x00", "contains U+0000 (a control character) at position 1"),
        ("next\x85line", "contains U+0085 (a control character) at position 5"),
        ("op 7 \u202egnp.exe", "contains U+202E (an invisible format character) at position 6"),
        ("\u2066isolated\u2069", "contains U+2066 (an invisible format character) at position 1"),
        ("in\u200bvisible", "contains U+200B (an invisible format character) at position 3"),
        ("\ufeffbom", "contains U+FEFF (an invisible format character) at position 1"),
        ("line\u2028break", "contains U+2028 (a line separator) at position 5"),
        ("para\u2029break", "contains U+2029 (a paragraph separator) at position 5"),
        ("lone \ud800", "contains U+D800 (a lone surrogate) at position 6"),
    ],
)
def test_free_text_refuses_characters_that_change_how_it_reads(text: str, expected: str) -> None:
    with pytest.raises(ValueError) as error:
        check_text(text)

    assert str(error.value) == f"{expected}: not allowed"


@pytest.mark.parametrize(
    "text",
    [
        "CSU Marseille, opérateur 7",
        "Intervention n° 4512 : intrusion hall B",  # with a no-break space, as French is typed
        "警察 センター",
        "Ünïcödé ✓ 🚓",
        "",
    ],
)
def test_free_text_accepts_what_people_write(text: str) -> None:
    assert check_text(text) == text


def test_display_escapes_what_would_drive_or_reorder_a_terminal() -> None:
    shown = display("cam\x1b]0;owned\x07 \u202eexe.txt\r\nFAKE\tline \udc80 \ue000")

    assert shown == "cam\\x1b]0;owned\\x07 \\u202eexe.txt\\x0d\\x0aFAKE\\x09line \\udc80 \\ue000"
    assert all(c.isprintable() for c in shown)


def test_display_leaves_readable_text_and_non_strings_alone() -> None:
    assert (
        display("hall-a: h264 1920x1080, opérateur 7 🚓")
        == "hall-a: h264 1920x1080, opérateur 7 🚓"
    )
    assert display("a\u00a0b") == "a\u00a0b"
    assert display(None) == "None"
    assert display(42) == "42"


def test_an_excerpt_quotes_a_few_dozen_characters_at_most() -> None:
    huge = "9" * 3 * 1024 * 1024

    shown = excerpt(huge)

    assert shown == f"'{'9' * 24}…' (3145728 characters)"
    assert excerpt("15m") == "'15m'"
    assert excerpt("x\x1by") == "'x\\x1by'"
    assert excerpt(10**400) == "an integer of about 401 digits"
    assert excerpt(float("inf")) == "inf"
    assert excerpt([[1], 2]) == "a list of 2 items"
    assert excerpt({"a": 1}) == "a dict of 1 item"


def test_clip_marks_where_a_text_was_cut() -> None:
    assert clip("short", 10) == "short"
    assert clip("x" * 400, 300) == "x" * 299 + "…"
    assert len(clip("x" * 400, 300)) == 300
