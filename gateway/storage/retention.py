"""Retention: evict the oldest segments, across cameras, until all three limits hold.

Limits: total bytes (finished plus being written) within the quota, no segment started longer
ago than ``max_age`` (the legal cap is one month), and at least ``min_free`` bytes free on the
filesystem. Each eviction names its reason.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from gateway.storage.index import Index, IndexedSegment
from gateway.units import format_duration, format_size

__all__ = ["Eviction", "RetentionPolicy", "enforce", "free_bytes"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    quota: int
    max_age: float
    min_free: int


@dataclass(frozen=True, slots=True)
class Eviction:
    segment: IndexedSegment
    reason: str
    """``quota``, ``max_age`` or ``min_free``."""


def free_bytes(path: Path) -> int:
    """Bytes available to unprivileged writers on the filesystem holding ``path``."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def enforce(
    index: Index,
    root: Path,
    policy: RetentionPolicy,
    *,
    writing_bytes: int = 0,
    now: float | None = None,
    on_evict: Callable[[Eviction], None] | None = None,
) -> list[Eviction]:
    """Delete the oldest segments until every limit holds, or nothing is left to delete."""
    now = time.time() if now is None else now
    evicted: list[Eviction] = []
    _, total, _ = index.totals()
    free = free_bytes(root)
    while True:
        batch = index.oldest(64)
        if not batch:
            break
        progressed = False
        for segment in batch:
            reason = _reason(segment, policy, total + writing_bytes, free, now)
            if reason is None:
                return evicted
            _delete(root, segment)
            index.remove(segment.path)
            total -= segment.bytes
            free = free_bytes(root)
            eviction = Eviction(segment, reason)
            evicted.append(eviction)
            progressed = True
            log.info(
                "evicted %s (%s, %s, %s old): %s",
                segment.path,
                format_size(segment.bytes),
                reason,
                format_duration(now - segment.start),
                _explain(reason, policy, total + writing_bytes, free),
            )
            if on_evict is not None:
                on_evict(eviction)
        if not progressed:
            break
    return evicted


def _reason(
    segment: IndexedSegment, policy: RetentionPolicy, used: int, free: int, now: float
) -> str | None:
    if now - segment.start > policy.max_age:
        return "max_age"
    if used > policy.quota:
        return "quota"
    if free < policy.min_free:
        return "min_free"
    return None


def _explain(reason: str, policy: RetentionPolicy, used: int, free: int) -> str:
    if reason == "quota":
        return f"{format_size(used)} used of {format_size(policy.quota)} quota"
    if reason == "min_free":
        return f"{format_size(free)} free, {format_size(policy.min_free)} required"
    return f"older than max_age {format_duration(policy.max_age)}"


def _delete(root: Path, segment: IndexedSegment) -> None:
    path = root / segment.path
    path.unlink(missing_ok=True)
    with suppress(OSError):
        path.parent.rmdir()  # only succeeds once the day folder is empty
