"""The shipped files of ``deploy/`` filled in for a run on this machine: paths, ports and the
example values replaced, each of which must still be in the file (so that a test or a bench
never runs on a shipped file that has drifted from what it checks).

Free of third-party imports: tests and the fleet simulation import it (``tests/support``).
"""

from __future__ import annotations

__all__ = ["fill"]


def fill(text: str, replacements: dict[str, str], *, name: str = "the shipped file") -> str:
    """``text`` with every key of ``replacements`` replaced; ValueError naming the first one
    that ``name`` no longer contains."""
    for old, new in replacements.items():
        if old not in text:
            raise ValueError(f"{name} no longer contains {old!r}")
        text = text.replace(old, new)
    return text
