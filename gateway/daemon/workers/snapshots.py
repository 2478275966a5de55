"""Snapshots asked of a camera's worker: each request waits for the JPEG's pieces (a channel
message is at most 64 KiB) or for the worker's reason why there is none."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.daemon.workers.messages import MAX_SNAPSHOT, SnapshotFailed, SnapshotPart, TakeSnapshot
from gateway.watch.snapshot import Snapshot, SnapshotError

__all__ = ["SnapshotRequests"]


@dataclass(slots=True)
class _Pending:
    parts: list[bytes] = field(default_factory=list)
    size: int = 0
    snapshot: Snapshot | None = None
    failure: str | None = None

    @property
    def done(self) -> bool:
        return self.snapshot is not None or self.failure is not None


class SnapshotRequests:
    """The snapshots one camera's callers wait for (any thread); the supervision loop hands
    the worker's answers to :meth:`arrived`."""

    def __init__(self) -> None:
        self._pending: dict[str, _Pending] = {}
        self._cond = threading.Condition()

    def take(self, camera: str, send: Callable[[object], bool], timeout: float) -> Snapshot:
        """Ask the worker (through ``send``) and wait; :class:`SnapshotError` saying why not."""
        request = secrets.token_hex(8)
        pending = _Pending()
        with self._cond:
            self._pending[request] = pending
        try:
            if not send(TakeSnapshot(request)):
                raise SnapshotError(f"camera {camera}'s worker did not take the request")
            with self._cond:
                self._cond.wait_for(lambda: pending.done, timeout)
        finally:
            with self._cond:
                self._pending.pop(request, None)
        if pending.snapshot is not None:
            return pending.snapshot
        if pending.failure is not None:
            raise SnapshotError(pending.failure)
        raise SnapshotError(f"camera {camera} gave no snapshot within {timeout:.0f} s")

    def arrived(self, message: SnapshotPart | SnapshotFailed) -> None:
        """A piece of a snapshot, or why there is none. Pieces of no waiting request are
        dropped; pieces out of order or past :data:`MAX_SNAPSHOT` fail the request."""
        with self._cond:
            pending = self._pending.get(message.request)
            if pending is None or pending.done:
                return
            if isinstance(message, SnapshotFailed):
                pending.failure = message.reason
            elif message.index != len(pending.parts) or (
                pending.size + len(message.data) > MAX_SNAPSHOT
            ):
                pending.failure = "the camera's worker sent a malformed snapshot"
            else:
                pending.parts.append(message.data)
                pending.size += len(message.data)
                if message.last:
                    jpeg = b"".join(pending.parts)
                    pending.snapshot = Snapshot(
                        jpeg, message.width, message.height, message.taken_at
                    )
            self._cond.notify_all()
