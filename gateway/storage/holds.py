"""Legal holds: ranges of a camera's recordings kept past ``max_age`` and the quota, for a case.

Images are kept at most one month *except* for a judicial procedure (Code de la sécurité
intérieure, L252-5): a hold is that exception. It covers every segment that overlaps its range
(holds work at segment granularity), until it is released or reaches its hard limit
(``storage.hold.max_age``, one year by default). Held segments are exempt from every eviction;
they still count in the quota, and all holds together may take at most ``storage.hold.quota``
(20 % of the quota by default), so recording always keeps the rest: a hold that does not fit is
refused.

Holds are kept in ``<storage.path>/holds.json``, written whole (temporary file, ``fsync``,
rename) under a lock, apart from the index, which can be rebuilt from the files and would lose
them. Placing, releasing and expiring are journalled by the caller, before they are reported.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gateway.host.durable import fsync_dir, write_all
from gateway.storage.index import Index
from gateway.storage.record import Segment
from gateway.storage.retention import HeldRange
from gateway.units import format_size

__all__ = ["HOLDS_NAME", "Hold", "HoldError", "HoldStore"]

HOLDS_NAME = "holds.json"
FUTURE_SLACK = 60.0
"""A hold's end may be this far past now (the segment being written), no further: what is not
recorded yet cannot be counted against the holds' budget."""
TEMPORARY_HOLD = 6 * 3600.0
"""An export's own hold lasts at most this long, should the export die without releasing it."""


class HoldError(Exception):
    """A hold cannot be placed or released; ``reason`` says why, for the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Hold:
    id: str
    case: str
    cameras: tuple[str, ...]
    start: float
    end: float
    placed_at: float
    expires: float
    placed_by: str
    reason: str
    temporary: bool = False
    """An export's hold on its sources while it runs (not counted in the budget)."""

    def ranges(self) -> list[HeldRange]:
        return [(camera, self.start, self.end) for camera in self.cameras]

    def as_dict(self) -> dict[str, Any]:
        value = asdict(self)
        value["cameras"] = list(self.cameras)
        return value

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Hold:
        return cls(
            id=str(value["id"]),
            case=str(value["case"]),
            cameras=tuple(str(c) for c in value["cameras"]),
            start=float(value["start"]),
            end=float(value["end"]),
            placed_at=float(value["placed_at"]),
            expires=float(value["expires"]),
            placed_by=str(value["placed_by"]),
            reason=str(value["reason"]),
            temporary=bool(value.get("temporary", False)),
        )


class HoldStore:
    """The holds of one storage root. Thread-safe, and safe against a second process."""

    def __init__(self, root: Path, *, quota: int, max_age: float) -> None:
        self.path = root / HOLDS_NAME
        self.quota = quota
        self.max_age = max_age
        self._lock = threading.Lock()
        self._cache: tuple[tuple[int, int, int], list[Hold]] | None = None

    def holds(self) -> list[Hold]:
        with self._lock:
            return list(self._read())

    def ranges(self, now: float | None = None) -> list[HeldRange]:
        """What retention must keep now (expired holds left out, even before they are removed)."""
        now = time.time() if now is None else now
        return [r for hold in self.holds() if hold.expires > now for r in hold.ranges()]

    def held_bytes(self, index: Index, holds: list[Hold] | None = None) -> int:
        """Bytes of the segments the (lasting) holds cover, each segment counted once."""
        holds = [h for h in (self.holds() if holds is None else holds) if not h.temporary]
        return sum(s.bytes for s in _covered(index, holds).values())

    def covered(self, index: Index, hold: Hold) -> list[Segment]:
        return sorted(_covered(index, [hold]).values(), key=lambda s: (s.camera, s.start))

    def place(
        self,
        index: Index,
        *,
        case: str,
        cameras: list[str],
        start: float,
        end: float,
        placed_by: str,
        reason: str,
        temporary: bool = False,
        now: float | None = None,
    ) -> tuple[Hold, int]:
        """Add a hold; (hold, bytes it adds to the budget). HoldError if it cannot be."""
        now = time.time() if now is None else now
        if end <= start:
            raise HoldError("the end of a hold must be after its start")
        if not temporary and end > now + FUTURE_SLACK:
            raise HoldError(
                "a hold covers recordings already made: its end must not be in the future "
                "(place another hold later for what is still to be recorded)"
            )
        if not cameras:
            raise HoldError("a hold needs at least one camera")
        hold = Hold(
            id=f"hold-{time.strftime('%Y%m%d', time.gmtime(now))}-{secrets.token_hex(3)}",
            case=case,
            cameras=tuple(sorted(set(cameras))),
            start=start,
            end=end,
            placed_at=now,
            expires=now + (TEMPORARY_HOLD if temporary else self.max_age),
            placed_by=placed_by,
            reason=reason,
            temporary=temporary,
        )
        with self._locked() as holds:
            segments = _covered(index, [hold])
            if not segments:
                raise HoldError("no recording in that range: nothing to hold")
            before = _covered(index, [h for h in holds if not h.temporary])
            added = sum(s.bytes for p, s in segments.items() if p not in before)
            if not temporary:
                held = sum(s.bytes for s in before.values())
                if held + added > self.quota:
                    total, limit = format_size(held + added), format_size(self.quota)
                    raise HoldError(
                        f"hold refused: it would hold {total} of recordings, over "
                        f"storage.hold.quota ({limit}; {format_size(held)} already held). "
                        "Release a hold no longer needed, or raise storage.hold.quota"
                    )
            holds.append(hold)
        return hold, added

    def release(self, hold_id: str) -> Hold:
        with self._locked() as holds:
            for n, hold in enumerate(holds):
                if hold.id == hold_id:
                    del holds[n]
                    return hold
        raise HoldError(f"no hold {hold_id!r} (see `camera-gateway hold list`)")

    def expired(self, now: float | None = None) -> list[Hold]:
        """Holds past their limit (not removed: :meth:`release` them once journalled)."""
        now = time.time() if now is None else now
        return [h for h in self.holds() if h.expires <= now]

    # -- file ----------------------------------------------------------------------------------

    def _read(self) -> list[Hold]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return []
        ident = (st.st_ino, st.st_size, st.st_mtime_ns)
        if self._cache is not None and self._cache[0] == ident:
            return self._cache[1]
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            holds = [Hold.from_dict(v) for v in data["holds"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise HoldError(f"{self.path} cannot be read ({exc}); holds are unknown") from None
        self._cache = (ident, holds)
        return holds

    @contextlib.contextmanager
    def _locked(self) -> Iterator[list[Hold]]:
        with self._lock:
            fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o640)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                holds = list(self._read())
                yield holds
                self._write(holds)
            finally:
                os.close(fd)

    def _write(self, holds: list[Hold]) -> None:
        tmp = self.path.with_name(f".{HOLDS_NAME}.new")
        data = json.dumps({"holds": [h.as_dict() for h in holds]}, indent=1).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o640)
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)
        self._cache = None


def _covered(index: Index, holds: list[Hold]) -> dict[str, Segment]:
    out: dict[str, Segment] = {}
    for hold in holds:
        for camera in hold.cameras:
            for segment in index.segments(camera=camera, since=hold.start, until=hold.end):
                if segment.end > hold.start and segment.start < hold.end:
                    out[segment.path] = segment
    return out
