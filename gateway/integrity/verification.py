"""Verifying a signed journal: every signature and link, and the tail against a published head.

An entry edited (its signature or canonical form no longer holds), removed or inserted (its
sequence number or link breaks), moved (both), or a tail cut off (shorter than the head the
centre holds, or different at that sequence number) is each a :class:`Problem` naming the file,
line and what is wrong. A journal whose first months were removed by retention starts after a
``journal_expired`` entry naming the last removed one: that is not a problem.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.integrity.journal import (
    EXPIRED,
    Head,
    SignedJournal,
    canonical,
    entry_hash,
    signed_part,
)
from gateway.integrity.keys import PublicKey

__all__ = ["Problem", "Verification", "verify"]


@dataclass(frozen=True, slots=True)
class Problem:
    where: str
    """``<file>:<line>`` or ``tail``."""
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


@dataclass(slots=True)
class Verification:
    entries: int = 0
    first_seq: int | None = None
    head: Head | None = None
    problems: list[Problem] = field(default_factory=list)
    unsigned: int = 0
    keys: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(
    journal: SignedJournal,
    keys: dict[str, PublicKey],
    *,
    head: Head | None = None,
    on_entry: Callable[[dict[str, Any]], None] | None = None,
) -> Verification:
    """Check every entry's signature and link; against ``head`` when given, that nothing after
    it was cut off and that it is the very entry the journal has at that sequence number."""
    result = Verification()
    prev: str | None = None
    seq: int | None = None
    expired: dict[str, int] = {}
    seen_at: dict[int, str] = {}
    for path, number, text, entry in journal.entries():
        where = f"{path.name}:{number}"
        if entry is None:
            result.problems.append(Problem(where, "line is not a journal entry (damaged)"))
            prev = None
            continue
        result.entries += 1
        if canonical(entry).decode() != text:
            result.problems.append(Problem(where, "entry was rewritten (not in canonical form)"))
        entry_seq = entry.get("seq")
        if not isinstance(entry_seq, int):
            result.problems.append(Problem(where, "entry has no sequence number"))
            continue
        if result.first_seq is None:
            result.first_seq = entry_seq
            link = entry.get("prev")
            if (
                entry_seq != 1
                and expired.get(str(link)) != entry_seq - 1
                and not _expiry_follows(journal, link, entry_seq)
            ):
                result.problems.append(
                    Problem(where, f"journal starts at entry {entry_seq}: earlier entries missing")
                )
        else:
            if seq is not None and entry_seq != seq + 1:
                result.problems.append(
                    Problem(
                        where, f"entry {entry_seq} follows entry {seq}: entries missing or moved"
                    )
                )
            if prev is not None and entry.get("prev") != prev:
                result.problems.append(
                    Problem(where, f"entry {entry_seq} does not link to the entry before it")
                )
        _check_signature(entry, keys, where, result)
        if entry.get("event") == EXPIRED:
            expired[str(entry.get("last_hash"))] = int(entry.get("last_seq") or 0)
        digest = entry_hash(entry)
        seen_at[entry_seq] = digest
        prev, seq = digest, entry_seq
        result.head = Head(entry_seq, digest, str(entry.get("time", "")))
        if on_entry is not None:
            on_entry(entry)
    if head is not None:
        last = result.head.seq if result.head is not None else 0
        if last < head.seq:
            result.problems.append(
                Problem(
                    "tail",
                    f"journal ends at entry {last} but entry {head.seq} was published: "
                    "entries removed from the end",
                )
            )
        elif seen_at.get(head.seq, head.hash) != head.hash:
            result.problems.append(
                Problem("tail", f"entry {head.seq} differs from the one published (rewritten)")
            )
    return result


def _expiry_follows(journal: SignedJournal, link: object, seq: int) -> bool:
    """The first kept entry follows entries removed by retention (a later expiry entry says so)."""
    for _, _, _, entry in journal.entries():
        if (
            entry is not None
            and entry.get("event") == EXPIRED
            and entry.get("last_hash") == link
            and entry.get("last_seq") == seq - 1
        ):
            return True
    return False


def _check_signature(
    entry: dict[str, Any], keys: dict[str, PublicKey], where: str, result: Verification
) -> None:
    sig = entry.get("sig")
    if sig is None:
        result.unsigned += 1
        result.problems.append(Problem(where, "entry is not signed (the key was unusable)"))
        return
    fingerprint = str(entry.get("key", ""))
    key = keys.get(fingerprint)
    if key is None:
        result.problems.append(Problem(where, f"signed by an unknown key {fingerprint[:16]}"))
        return
    try:
        signature = base64.b64decode(str(sig), validate=True)
    except ValueError:
        result.problems.append(Problem(where, "signature is not base64"))
        return
    if not key.verify(signature, signed_part(entry)):
        result.problems.append(Problem(where, "signature does not match (entry altered)"))
        return
    result.keys.add(fingerprint)
