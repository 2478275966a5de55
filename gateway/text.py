"""Free text from outside the daemon: what it may contain, and how it is shown.

Anything a client or a camera sends (``requested_by``, ``reason``, an error string, a codec
name) ends up in the log, the journal and the terminal of whoever runs ``camera-gateway status``.
Two rules keep those outputs honest:

- :func:`check_text` refuses, in a field a requester fills in, any character that changes how
  the text reads rather than what it says: control characters (category Cc: CR and LF forge log
  lines, ESC drives the terminal, TAB shifts columns), format characters (Cf: the bidi overrides
  U+202A–U+202E and isolates U+2066–U+2069 reorder a line, zero-width characters hide text),
  line and paragraph separators (Zl, Zp) and lone surrogates (Cs, which cannot even be written
  as UTF-8).
- :func:`display` escapes the same characters, plus unassigned and private-use code points, as
  ``\\x1b`` or ``\\u202e`` in text printed to a terminal, so a terminal never receives one raw.

:func:`excerpt` quotes at most a few dozen characters of a value in an error message, so a
3 MB input makes a 60-character message, not a 3 MB one.
"""

from __future__ import annotations

import unicodedata

__all__ = ["EXCERPT_LENGTH", "check_text", "clip", "display", "excerpt"]

EXCERPT_LENGTH = 24
"""Characters of an input quoted in an error message: enough to recognise a value, such as an
ISO time (24 characters), and never enough to carry a payload into a log line."""

_REFUSED = {
    "Cc": "a control character",
    "Cf": "an invisible format character",
    "Cs": "a lone surrogate",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}
"""Categories refused in free text, with the words used in the refusal."""

_ESCAPED = frozenset({*_REFUSED, "Co", "Cn"})
"""Categories :func:`display` escapes: the refused ones, plus private-use (Co) and unassigned
(Cn) code points, whose rendering no one can predict."""


def _category(char: str) -> str:
    return unicodedata.category(char)


def check_text(text: str) -> str:
    """Return ``text`` if it holds only characters that read as what they are.

    Raise ValueError naming the first refused character, e.g. ``contains U+000A (a control
    character) at position 12: not allowed``. Positions count from 1.
    """
    if text.isascii() and text.isprintable():
        return text  # the common case, checked at C speed
    for position, char in enumerate(text, start=1):
        kind = _REFUSED.get(_category(char))
        if kind is not None:
            raise ValueError(
                f"contains U+{ord(char):04X} ({kind}) at position {position}: not allowed"
            )
    return text


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def display(value: object) -> str:
    """``value`` as text safe to print to a terminal: every character :func:`check_text` refuses,
    and every private-use or unassigned one, is shown escaped (``\\x1b``, ``\\u202e``)."""
    text = value if isinstance(value, str) else str(value)
    if text.isascii() and text.isprintable():
        return text
    return "".join(_escape(c) if _category(c) in _ESCAPED else c for c in text)


def excerpt(value: object, limit: int = EXCERPT_LENGTH) -> str:
    """A short, quoted, terminal-safe rendering of ``value`` for an error message.

    Short values are shown as ``repr`` shows them; longer ones are cut, with their length:
    ``'9999…' (3145728 characters)``. Never more than ``limit`` characters of the input.
    """
    if isinstance(value, str):
        if len(value) <= limit:
            return display(repr(value))
        quoted = repr(value[:limit])
        return f"{display(quoted[:-1])}…{quoted[-1]} ({len(value)} characters)"
    if isinstance(value, bool | float) or value is None:
        return repr(value)
    if isinstance(value, int):
        if value.bit_length() <= 64:
            return repr(value)
        # str() of an int with more than 4300 digits raises; the length is what matters here.
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    kind = type(value).__name__
    if isinstance(value, list | tuple | dict | set):
        return f"a {kind} of {len(value)} item{'s' if len(value) != 1 else ''}"
    return f"a {kind}"


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending with ``…`` when it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
