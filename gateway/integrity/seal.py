"""Each camera's seal chain: one signed entry per segment recorded, and one per segment evicted.

A ``segment`` entry holds the file's SHA-256 (computed while it was written), size, times and
flags; an ``evicted`` entry says retention removed it, and why. So "evicted by retention" and
"missing" stay different things, and a file changed after it was sealed no longer matches.
Chains live in ``<audit.path>/seals/<camera>-YYYY-MM.jsonl``, apart from the recordings.

A segment is only sealed with a working key (a chain entry without a signature would prove
nothing); while the key is unusable the segments wait in the index, their hashes already taken,
and are sealed once it works again. Evictions cannot wait (the file is gone): they are chained
even then, unsigned, and verification reports them so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.integrity.journal import Head, JournalError, SignedJournal
from gateway.integrity.keys import KeyRing, SigningKeyError

__all__ = ["SEALS_DIRECTORY", "ChainRecord", "JournalError", "Sealer", "hash_file"]

SEALS_DIRECTORY = "seals"
SEGMENT = "segment"
EVICTED = "evicted"
_HASH_CHUNK = 1024 * 1024


def hash_file(path: Path) -> tuple[str, int]:
    """(SHA-256, bytes) of a file, read without following a link."""
    digest = hashlib.sha256()
    size = 0
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        while chunk := os.read(fd, _HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest(), size


@dataclass(frozen=True, slots=True)
class ChainRecord:
    """What a camera's chain says about one segment path."""

    seq: int
    sha256: str | None
    bytes: int
    start: float
    end: float
    flags: tuple[str, ...]
    clock_synced: bool | None
    sealed_at: str
    evicted: str | None = None
    """Reason retention gave, when it removed the segment."""
    evicted_at: str | None = None


class Sealer:
    """The seal chains of one box."""

    def __init__(self, folder: Path, keys: KeyRing, *, retention: float | None = None) -> None:
        self.folder = folder
        self.keys = keys
        self.retention = retention
        self._chains: dict[str, SignedJournal] = {}

    def chain(self, camera: str) -> SignedJournal:
        chain = self._chains.get(camera)
        if chain is None:
            chain = SignedJournal(self.folder, camera, self.keys.signer, retention=self.retention)
            self._chains[camera] = chain
        return chain

    def cameras(self) -> list[str]:
        """Cameras with a chain on disk (or used by this process)."""
        names = set(self._chains)
        try:
            for entry in os.listdir(self.folder):
                if entry.endswith(".jsonl") and len(entry) > 14:
                    names.add(entry[: -len("-YYYY-MM.jsonl")])
        except FileNotFoundError:
            pass
        return sorted(names)

    def seal(
        self,
        camera: str,
        path: str,
        *,
        sha256: str,
        size: int,
        start: float,
        end: float,
        frames: int,
        flags: Iterable[str],
        clock_synced: bool | None,
    ) -> int:
        """Chain a segment; its sequence number. Raises SigningKeyError (then retry later) or
        JournalError."""
        self.keys.signer()  # no unsigned seal: fail here, before writing
        entry = self.chain(camera).append(
            SEGMENT,
            camera=camera,
            path=path,
            sha256=sha256,
            bytes=size,
            start=round(start, 3),
            end=round(end, 3),
            frames=frames,
            flags=sorted(flags),
            clock_synced=clock_synced,
        )
        if entry.get("sig") is None:  # the key broke between the check and the write
            raise SigningKeyError("the signing key became unusable while sealing")
        return int(entry["seq"])

    def evicted(self, camera: str, path: str, *, sha256: str | None, reason: str) -> None:
        self.chain(camera).append(EVICTED, camera=camera, path=path, sha256=sha256, reason=reason)

    def heads(self) -> dict[str, Head]:
        return {camera: self.chain(camera).head() for camera in self.cameras()}

    def records(self, camera: str) -> dict[str, ChainRecord]:
        """What the chain says about each path it names (reads the whole chain)."""
        out: dict[str, ChainRecord] = {}
        for _, _, _, entry in self.chain(camera).entries():
            if entry is None:
                continue
            _apply(out, entry)
        return out

    def expire(self) -> None:
        for camera in self.cameras():
            self.chain(camera).expire()


def _apply(out: dict[str, ChainRecord], entry: dict[str, Any]) -> None:
    path = entry.get("path")
    if not isinstance(path, str):
        return
    if entry.get("event") == SEGMENT:
        out[path] = ChainRecord(
            seq=int(entry.get("seq", 0)),
            sha256=_str(entry.get("sha256")),
            bytes=int(entry.get("bytes", 0)),
            start=float(entry.get("start", 0.0)),
            end=float(entry.get("end", 0.0)),
            flags=tuple(entry.get("flags") or ()),
            clock_synced=entry.get("clock_synced"),
            sealed_at=str(entry.get("time", "")),
        )
    elif entry.get("event") == EVICTED and path in out:
        out[path] = dataclasses.replace(
            out[path], evicted=str(entry.get("reason", "")), evicted_at=str(entry.get("time", ""))
        )


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None
