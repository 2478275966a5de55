"""The storage as a camera worker sees it: segment names are its own to choose, everything
else (indexing, retention, salvage) goes to the supervisor over the channel."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gateway.daemon.workers.messages import (
    SegmentAborted,
    SegmentFinished,
    SegmentOpened,
    StorageState,
    UpMessage,
)
from gateway.storage.errors import StorageError
from gateway.storage.naming import MARKER_NAME, final_path, segment_path
from gateway.storage.record import Segment

__all__ = ["WorkerStorage"]


class WorkerStorage:
    """A :class:`~gateway.recorder.recorder.SegmentStore` for one camera's worker."""

    def __init__(self, send: Callable[[UpMessage], None], root: Path, max_bytes: int) -> None:
        self._send = send
        self.root = root
        self._state = StorageState(error=None, segment_max_bytes=max_bytes)
        self.writing_bytes = 0
        """Size of the segment being written (reported with the worker's status)."""

    def update(self, state: StorageState) -> None:
        self._state = state

    @property
    def segment_max_bytes(self) -> int:
        return self._state.segment_max_bytes

    def new_segment(self, camera: str, start: float) -> Path:
        error = self._state.error
        if error is not None:
            raise StorageError(error)
        if not (self.root / MARKER_NAME).exists():
            # The supervisor adopts a freshly mounted disk; until then, nothing is written.
            raise StorageError(
                f"storage {self.root} lost its marker file: disk unmounted? "
                "not recording onto the system disk"
            )
        path = segment_path(self.root, camera, start)
        while path.exists() or final_path(path).exists():
            start += 0.001  # same millisecond (clock stepped back): next free name
            path = segment_path(self.root, camera, start)
        return path

    def opened(self, camera: str, path: Path, expected: int) -> None:
        self.writing_bytes = 0
        self._send(SegmentOpened(path=str(path), expected=expected))

    def writing(self, camera: str, size: int) -> None:
        self.writing_bytes = size

    def closed(self, camera: str) -> None:
        self.writing_bytes = 0

    def finished(self, segment: Segment) -> None:
        flags = tuple(sorted(f for f in segment.flags if f == "no_keyframe"))
        self._send(
            SegmentFinished(
                path=str(segment.resolve(self.root)),
                flags=flags,  # type: ignore[arg-type]
                sha256=segment.sha256,
                bytes=segment.bytes,
                clock_synced=segment.clock_synced,
                ended=segment.ended,  # type: ignore[arg-type]
            )
        )

    def salvage(self, part: Path) -> None:
        self._send(SegmentAborted(path=str(part)))

    def request_retention(self) -> None:
        """Retention runs in the supervisor, woken by the segment messages."""
