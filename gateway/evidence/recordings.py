"""Checking the recordings at rest against their seal chains (``recordings verify``).

Each segment a camera's chain names is re-hashed and reported as:

- ``ok``: the file is the one sealed when it was recorded;
- ``altered``: the file differs (same size or larger);
- ``truncated``: the file is shorter than when sealed;
- ``missing``: the chain sealed it, retention never evicted it, and it is gone;
- ``evicted``: retention removed it (the chain says when and why);
- ``unsealed``: indexed but not in the chain yet (sealing waits for the key, or the next turn).

The chains themselves are checked too (signatures, links, against published heads when given):
a damaged chain is a failure. Only ``altered``, ``truncated``, ``missing`` and chain problems
fail; the rest is information.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.integrity.journal import Head
from gateway.integrity.keys import KeyRing
from gateway.integrity.seal import ChainRecord, Sealer, hash_file
from gateway.integrity.verification import Problem, verify
from gateway.storage.index import Index

__all__ = ["FAILING", "RecordingsReport", "SegmentCheck", "verify_recordings"]

FAILING = frozenset({"altered", "truncated", "missing"})


@dataclass(frozen=True, slots=True)
class SegmentCheck:
    camera: str
    path: str
    status: str
    start: float
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "camera": self.camera,
            "path": self.path,
            "status": self.status,
            "start": self.start,
            "detail": self.detail,
        }


@dataclass(slots=True)
class RecordingsReport:
    segments: list[SegmentCheck] = field(default_factory=list)
    chain_problems: dict[str, list[Problem]] = field(default_factory=dict)
    heads: dict[str, Head] = field(default_factory=dict)

    @property
    def counts(self) -> Counter[str]:
        return Counter(s.status for s in self.segments)

    @property
    def ok(self) -> bool:
        return not any(self.chain_problems.values()) and not any(
            s.status in FAILING for s in self.segments
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "counts": dict(self.counts),
            "segments": [s.as_dict() for s in self.segments],
            "chains": {
                camera: {
                    "head": self.heads[camera].as_dict() if camera in self.heads else None,
                    "problems": [str(p) for p in problems],
                }
                for camera, problems in self.chain_problems.items()
            },
        }


def verify_recordings(
    root: Path,
    index: Index,
    sealer: Sealer,
    keys: KeyRing,
    *,
    camera: str | None = None,
    since: float | None = None,
    published: dict[str, Head] | None = None,
) -> RecordingsReport:
    report = RecordingsReport()
    public = keys.public_keys()
    cameras = [camera] if camera is not None else sealer.cameras()
    indexed = {s.path: s for s in index.segments(camera=camera, since=since)}
    for name in cameras:
        head = (published or {}).get(name)
        result = verify(sealer.chain(name), public, head=head)
        report.chain_problems[name] = result.problems
        if result.head is not None:
            report.heads[name] = result.head
        records = sealer.records(name)
        for path, record in sorted(records.items(), key=lambda item: item[1].start):
            if since is not None and record.end < since:
                continue
            report.segments.append(_check(root, name, path, record))
    sealed = {s.path for s in report.segments}
    for path, segment in sorted(indexed.items(), key=lambda item: item[1].start):
        if path not in sealed:
            report.segments.append(
                SegmentCheck(segment.camera, path, "unsealed", segment.start, "not chained yet")
            )
    return report


def _check(root: Path, camera: str, path: str, record: ChainRecord) -> SegmentCheck:
    def result(status: str, detail: str = "") -> SegmentCheck:
        return SegmentCheck(camera, path, status, record.start, detail)

    target = root / path
    if record.evicted is not None:
        if os.path.lexists(target):
            return _compare(target, record, result)
        return result("evicted", f"{record.evicted} at {record.evicted_at}")
    if not os.path.lexists(target):
        return result("missing", "sealed, never evicted, and not on disk")
    return _compare(target, record, result)


def _compare(
    target: Path, record: ChainRecord, result: Callable[[str, str], SegmentCheck]
) -> SegmentCheck:
    try:
        digest, size = hash_file(target)
    except OSError as exc:
        return result("missing", f"cannot be read: {exc.strerror}")
    if digest == record.sha256:
        return result("ok", "")
    if size < record.bytes:
        return result("truncated", f"{size} bytes, {record.bytes} when sealed")
    return result("altered", f"sha256 {digest[:16]}…, sealed as {str(record.sha256)[:16]}…")
