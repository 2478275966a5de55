"""One segment file: fragmented MP4 written by stream copy, synced as each fragment lands.

Fragments are cut every :data:`FRAGMENT_SECONDS`; the file only grows when a fragment is
written, and it is ``fdatasync``-ed when it has grown and :data:`SYNC_SECONDS` have passed, so
about twice a second. A crash or power cut loses less than one second of video (the fragment
being built, and the packets the recorder had not taken yet); everything before the last
complete fragment plays. The file carries the ``.part`` suffix until closed.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import av
from av.container import OutputContainer

from gateway.media.packet import Packet, Track
from gateway.media.remux import Remuxer
from gateway.storage.naming import final_path

__all__ = ["FRAGMENT_SECONDS", "SYNC_SECONDS", "SegmentInfo", "SegmentWriter", "fsync_dir"]

log = logging.getLogger(__name__)

FRAGMENT_SECONDS = 0.5
SYNC_SECONDS = 0.25
_MUXER_OPTIONS = {
    # empty_moov: headers first, so the file is readable from its first fragment on.
    # default_base_moof: self-contained fragments, as players and our repair expect.
    "movflags": "empty_moov+default_base_moof",
    "frag_duration": str(int(FRAGMENT_SECONDS * 1_000_000)),
    "flush_packets": "1",
}


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """A finished segment, as the index stores it."""

    camera: str
    path: Path
    start: float
    end: float
    bytes: int
    frames: int
    codec: str
    width: int
    height: int
    has_audio: bool


def fsync_dir(path: Path) -> None:
    """Make a directory entry (a created or renamed file) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SegmentWriter:
    """Writes packets of one session into one ``.part`` file; :meth:`close` finishes it.

    Raises ``OSError`` (disk full, read-only, vanished) or ``av.error.FFmpegError`` from
    :meth:`write`; the caller then calls :meth:`abort`, which keeps what was already written.
    """

    def __init__(
        self, path: Path, tracks: tuple[Track, ...], *, camera_id: str, start: float
    ) -> None:
        self.path = path
        self.camera_id = camera_id
        self.start = start
        self._last_sync = time.monotonic()
        self._synced_bytes = 0
        self.durable_seconds = 0.0
        """Media known to be on disk (as of the last successful sync)."""
        self._video = next((t for t in tracks if t.kind == "video"), None)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("xb", buffering=0)
        try:
            fsync_dir(path.parent)
            self._container: OutputContainer = av.open(
                self._file, "w", format="mp4", options=_MUXER_OPTIONS
            )
            # 'hvc1' (parameter sets in the sample description) plays in browsers and Apple
            # players; FFmpeg's default 'hev1' does not everywhere.
            self._remux = Remuxer(self._container, tracks, hevc_tag="hvc1")
        except BaseException:
            self._file.close()
            path.unlink(missing_ok=True)
            raise

    @property
    def bytes(self) -> int:
        return self._file.tell() if not self._file.closed else 0

    @property
    def duration(self) -> float:
        """Seconds of media written so far."""
        return self._remux.duration

    @property
    def frames(self) -> int:
        return self._remux.frames

    @property
    def skipped(self) -> list[Track]:
        """Tracks MP4 cannot take (G.711 audio, say), left out of the file."""
        return self._remux.skipped

    def write(self, packet: Packet) -> None:
        self._remux.write(packet)
        self.sync(force=False)

    def sync(self, *, force: bool) -> None:
        """``fdatasync`` the file if it grew and the last sync is older than SYNC_SECONDS."""
        now = time.monotonic()
        if not force and now - self._last_sync < SYNC_SECONDS:
            return
        self._last_sync = now
        size = self.bytes
        if size != self._synced_bytes:
            duration = self.duration
            os.fdatasync(self._file.fileno())
            self._synced_bytes = size
            self.durable_seconds = duration

    def close(self) -> SegmentInfo:
        """Write the trailer, sync, and rename to the final name."""
        self._container.close()
        os.fsync(self._file.fileno())
        size = self._file.tell()
        self._file.close()
        final = final_path(self.path)
        os.replace(self.path, final)
        fsync_dir(final.parent)
        return self._info(final, size)

    def abort(self) -> None:
        """Give up after an error: close without the trailer; the caller repairs the file."""
        try:
            self._container.close()
        except Exception as exc:  # the disk that failed the write may fail the trailer too
            log.debug("camera %s: trailer not written: %s", self.camera_id, exc)
        try:
            self._file.close()
        except OSError as exc:
            log.debug("camera %s: close failed: %s", self.camera_id, exc)

    def _info(self, path: Path, size: int) -> SegmentInfo:
        video = self._video
        return SegmentInfo(
            camera=self.camera_id,
            path=path,
            start=self.start,
            end=self.start + self.duration,
            bytes=size,
            frames=self.frames,
            codec=video.codec if video else "none",
            width=video.width if video else 0,
            height=video.height if video else 0,
            has_audio=any(t.kind == "audio" for t in self._remux.tracks),
        )
