"""The recorder: a fan-out consumer that cuts a camera's packets into segments on keyframes.

A segment starts on a keyframe and is cut at the first keyframe after ``segment_duration``, at the
end of a camera session, and when the system clock is stepped (so file names stay true). Storage
errors (disk full, read-only, vanished) stop this camera's recording with a clear error; what was
already written is kept, and recording resumes by itself once the storage takes data again.

A camera cannot make one segment eat the others' share of the quota: a segment is cut at the
first keyframe past :attr:`SegmentStore.segment_max_bytes`, and cut outright past twice that size,
or past :func:`time_bound`, if no keyframe comes (flagged ``no_keyframe``); its packets are then
dropped until the camera sends a keyframe again.
"""

from __future__ import annotations

import errno
import logging
import time
from pathlib import Path
from typing import Protocol

import av

from gateway.backoff import Backoff
from gateway.clock import ClockWatch, wall_at
from gateway.media.normalize import AccessUnitJoiner
from gateway.media.packet import Packet, SessionInfo, Track
from gateway.recorder.segment import SegmentWriter, UnsafePathError
from gateway.storage.errors import StorageError
from gateway.storage.record import ENDED_CUT, Segment
from gateway.telemetry.events import EventSink
from gateway.telemetry.state import RecorderStatus
from gateway.units import format_duration, format_size

__all__ = ["NO_KEYFRAME", "Recorder", "SegmentStore", "time_bound"]

log = logging.getLogger(__name__)

NO_KEYFRAME = "no_keyframe"
STOPPING = "stopping"


def time_bound(segment_duration: float) -> float:
    """Seconds a segment may run without a keyframe to cut it at: twice the target, and at
    least 10 s more (a camera's GOP of up to 10 s still cuts normally)."""
    return max(2 * segment_duration, segment_duration + 10.0)


class SegmentStore(Protocol):
    """What the recorder needs from the storage: the daemon's :class:`Storage`, or in a camera
    worker, the channel to it."""

    @property
    def segment_max_bytes(self) -> int:
        """A segment is cut at the first keyframe past this size (twice it, without one)."""
        ...

    def new_segment(self, camera: str, start: float) -> Path:
        """Path of a new ``.part``; raises StorageError if the storage cannot take one now."""
        ...

    def opened(self, camera: str, path: Path, expected: int) -> None: ...

    def writing(self, camera: str, size: int) -> None: ...

    def closed(self, camera: str) -> None: ...

    def finished(self, segment: Segment) -> None: ...

    def salvage(self, part: Path) -> None: ...

    def request_retention(self) -> None: ...


class Recorder:
    """Consumer named ``recorder``; one per recorded camera."""

    name = "recorder"

    def __init__(
        self,
        camera_id: str,
        storage: SegmentStore,
        *,
        segment_duration: float,
        status: RecorderStatus,
        events: EventSink | None = None,
    ) -> None:
        self.camera_id = camera_id
        self._events = events
        self._storage = storage
        self._segment_duration = segment_duration
        self._status = status
        self._tracks: tuple[Track, ...] = ()
        self._writer: SegmentWriter | None = None
        self._segment_base: float = 0.0
        self._clock = ClockWatch()
        self._retry_at = 0.0
        self._backoff = Backoff(initial=1.0, maximum=10.0)
        self._warned_codecs: set[str] = set()
        self._joiner = AccessUnitJoiner()
        self._expected_size = 0
        """Bytes a full segment took last time: room retention makes before the next one."""

    # -- Consumer ------------------------------------------------------------------------------

    def on_session_start(self, info: SessionInfo) -> None:
        self._finish("new camera session")
        self._tracks = info.tracks

    def on_packet(self, packet: Packet) -> None:
        for whole in self._joiner.push(packet):
            self._record(whole)

    def _record(self, packet: Packet) -> None:
        keyframe = packet.starts_gop
        if self._writer is None:
            if keyframe and self._tracks and time.monotonic() >= self._retry_at:
                self._open(packet)
        elif keyframe and (ending := self._cut_reason(packet)) is not None:
            self._close(None, ended=ending)
            self._open(packet)
        elif not keyframe and self._past_bound(self._writer, packet):
            self._cut_without_keyframe(self._writer, packet)
        writer = self._writer
        if writer is None:
            if self._status.error is not None:
                self._status.skipped_packets += 1  # lost to the storage failure or the wait
            return
        try:
            writer.write(packet)
        except (OSError, av.error.FFmpegError) as exc:
            self._fail(exc)
            return
        self._confirm(writer)

    def on_session_end(self, reason: str) -> None:
        self._finish(reason)

    def on_tick(self) -> None:
        writer = self._writer
        if writer is None:
            return
        try:
            writer.sync(force=False)
        except OSError as exc:
            self._fail(exc)
            return
        self._confirm(writer)
        self._storage.writing(self.camera_id, writer.bytes)

    def on_close(self) -> None:
        self._finish(STOPPING)

    def _finish(self, reason: str) -> None:
        """Record what is still held, then close the segment."""
        for whole in self._joiner.flush():
            self._record(whole)
        self._close(reason, ended=STOPPING if reason == STOPPING else "camera")

    # -- segments ------------------------------------------------------------------------------

    def _cut_reason(self, packet: Packet) -> str | None:
        """Why the segment is to be cut at this keyframe (an :data:`ENDINGS` key), or None."""
        # Half a frame of slack: camera clocks put keyframes a few ticks either side of a second.
        slack = packet.duration * packet.scale / 2
        if packet.seconds - self._segment_base + slack >= self._segment_duration:
            return ENDED_CUT
        if self._writer is not None and self._writer.bytes >= self._storage.segment_max_bytes:
            return ENDED_CUT
        step = self._clock.step()
        if step:
            log.warning(
                "camera %s: system clock stepped by %+.1f s; starting a new segment",
                self.camera_id,
                step,
            )
            return "clock_step"
        return None

    def _past_bound(self, writer: SegmentWriter, packet: Packet) -> bool:
        if writer.bytes > 2 * self._storage.segment_max_bytes:
            return True
        return packet.seconds - self._segment_base > time_bound(self._segment_duration)

    def _cut_without_keyframe(self, writer: SegmentWriter, packet: Packet) -> None:
        """Close a segment that outgrew its bounds with no keyframe to cut it at; drop the
        camera's packets until it sends one (a new segment can only start on a keyframe)."""
        length = packet.seconds - self._segment_base
        reason = (
            f"no keyframe from the camera after {format_duration(length)} and "
            f"{format_size(writer.bytes)}: segment cut, recording resumes at the next keyframe"
        )
        self._close(None, flags=frozenset({NO_KEYFRAME}), ended=NO_KEYFRAME)
        self._status.no_keyframe_cuts += 1
        if self._status.error is None:
            log.error("camera %s: %s", self.camera_id, reason)
            if self._events is not None:
                self._events.emit("recording_stopped", camera=self.camera_id, reason=reason)
        self._status.error = reason

    def _open(self, packet: Packet) -> None:
        start = wall_at(packet.received)
        try:
            path = self._storage.new_segment(self.camera_id, start)
            writer = SegmentWriter(path, self._tracks, camera_id=self.camera_id, start=start)
        except (StorageError, OSError, av.error.FFmpegError) as exc:
            self._fail(exc)
            return
        for track in writer.skipped:
            if track.codec_name not in self._warned_codecs:
                self._warned_codecs.add(track.codec_name)
                log.warning(
                    "camera %s: audio %s cannot be stored in MP4; recording video without it",
                    self.camera_id,
                    track.codec_name,
                )
        self._writer = writer
        self._storage.opened(self.camera_id, path, self._expected_size)
        self._segment_base = packet.seconds
        self._clock.step()
        # While retrying after an error, a segment only counts once media has reached the disk.
        self._status.recording = self._status.error is None
        self._status.current_segment = path.name

    def _confirm(self, writer: SegmentWriter) -> None:
        """After an error, recording counts as back once media has reached the disk."""
        if self._status.error is not None and writer.durable_seconds > 0:
            self._recovered()

    def _recovered(self) -> None:
        log.info("camera %s: recording again", self.camera_id)
        self._status.error = None
        self._status.recording = self._writer is not None
        self._backoff.reset()
        if self._events is not None:
            self._events.emit("recording_resumed", camera=self.camera_id)

    def _close(
        self, reason: str | None, *, flags: frozenset[str] = frozenset(), ended: str = ENDED_CUT
    ) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        self._status.recording = False
        self._status.current_segment = None
        try:
            segment = writer.close(flags, ended=ended)
        except (OSError, av.error.FFmpegError) as exc:
            self._writer = writer
            self._fail(exc)
            return
        self._status.segments += 1
        self._status.bytes_written += segment.bytes
        if self._status.error is not None and not flags:
            self._recovered()
        duration = segment.duration
        if duration >= self._segment_duration / 2:
            self._expected_size = round(segment.bytes * self._segment_duration / duration)
        self._storage.closed(self.camera_id)
        try:
            self._storage.finished(segment)
        except Exception as exc:  # the index lives on the same disk; reconciled at next start
            log.error("camera %s: could not index %s: %s", self.camera_id, segment.name, exc)
        if reason is not None:
            log.debug("camera %s: segment %s closed (%s)", self.camera_id, segment.name, reason)

    def _fail(self, exc: BaseException) -> None:
        reason = _describe(exc)
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.abort()
            self._storage.salvage(writer.path)
        self._storage.closed(self.camera_id)
        self._storage.request_retention()
        delay = self._backoff.next()
        self._retry_at = time.monotonic() + delay
        self._status.recording = False
        self._status.current_segment = None
        if self._status.error != reason:
            log.error(
                "camera %s: recording stopped: %s (retrying every few seconds)",
                self.camera_id,
                reason,
            )
            if self._events is not None:
                self._events.emit("recording_stopped", camera=self.camera_id, reason=reason)
        self._status.error = reason


def _describe(exc: BaseException) -> str:
    if isinstance(exc, StorageError):
        return exc.reason
    if isinstance(exc, UnsafePathError):
        return exc.strerror or "unsafe storage path"
    code = getattr(exc, "errno", None)
    if code == errno.ENOSPC:
        return "disk full"
    if code == errno.EROFS:
        return "storage is read-only"
    if code in (errno.ENOENT, errno.ENOTDIR, errno.ENODEV, errno.EIO):
        return f"storage unavailable ({errno.errorcode.get(code, code)})"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    if isinstance(exc, av.error.FFmpegError):
        return f"muxer error: {exc.strerror}"
    return type(exc).__name__
