"""One segment file: fragmented MP4 written by stream copy, synced as each fragment lands.

Fragments are cut every :data:`FRAGMENT_SECONDS`; the file only grows when a fragment is
written, and it is ``fdatasync``-ed when it has grown and :data:`SYNC_SECONDS` have passed, so
about twice a second. A crash or power cut loses less than one second of video (the fragment
being built, and the packets the recorder had not taken yet); everything before the last
complete fragment plays. The file carries the ``.part`` suffix until closed.

The file is written so that a failing disk can never produce a bad segment that looks good:
every write loops until the muxer's bytes are all on the file or the OS refuses with an error
(a short write count is never handed back to FFmpeg, which would ignore it), and that error cuts
the segment at its last whole fragment. The camera and day folders are opened without following
symbolic links, and the file is created through their descriptors, so a link swapped into the
storage tree is refused rather than written through.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import io
import logging
import os
import time
from pathlib import Path

import av
from av.container import OutputContainer

from gateway.clock import clock_synchronized
from gateway.media.packet import Packet, Track
from gateway.media.remux import Remuxer
from gateway.storage.naming import final_path
from gateway.storage.record import ENDED_CUT, Segment, relative_path

__all__ = [
    "FRAGMENT_SECONDS",
    "SYNC_SECONDS",
    "FullWriter",
    "SegmentWriter",
    "UnsafePathError",
    "open_segment_dir",
]

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


class UnsafePathError(OSError):
    """A folder of the storage tree is a symbolic link (or not a folder): not written through."""


def open_segment_dir(part: Path) -> int:
    """Open (creating them) the camera and day folders of ``part`` without following links.

    ``part`` is ``<root>/<camera>/<day>/<file>``; the root itself may be a link (a mount point
    an administrator chose), the folders under it may not. Returns a descriptor of the day
    folder, which the caller closes.
    """
    day, camera, root = part.parent, part.parent.parent, part.parent.parent.parent
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name, shown in ((camera.name, camera), (day.name, day)):
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o750, dir_fd=fd)
            try:
                child = os.open(
                    name,
                    os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                    dir_fd=fd,
                )
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafePathError(
                        exc.errno, f"{shown} is a symbolic link or not a folder: not writing there"
                    ) from None
                raise
            if name == day.name:
                os.fsync(fd)  # the camera folder's entry for a new day folder
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


class FullWriter(io.RawIOBase):
    """A file the muxer writes through: each write is complete or raises the OS error.

    ``os.write`` may take fewer bytes than given (a disk filling up); FFmpeg ignores a short
    count from a custom writer, so the bytes would silently be missing from the segment.
    """

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self._hash = hashlib.sha256()
        self._hashed = 0
        """Bytes fed to the hash: the file's length while the muxer only appends."""
        self._in_order = True

    @property
    def sha256(self) -> str | None:
        """SHA-256 of the whole file, computed as it was written (no re-read), or None if the
        muxer wrote anywhere but at the end (the caller then hashes the file)."""
        return self._hash.hexdigest() if self._in_order else None

    @property
    def hashed_bytes(self) -> int:
        return self._hashed

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        if self._in_order:
            if os.lseek(self._fd, 0, os.SEEK_CUR) == self._hashed:
                self._hash.update(view)
                self._hashed += len(view)
            else:
                self._in_order = False
        done = 0
        while done < len(view):
            done += os.write(self._fd, view[done:])  # raises OSError (ENOSPC, EIO, ...)
        return done

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return os.lseek(self._fd, offset, whence)

    def tell(self) -> int:
        return os.lseek(self._fd, 0, os.SEEK_CUR)

    def close(self) -> None:
        if not self.closed:
            try:
                os.close(self._fd)
            finally:
                super().close()


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
        self._clock_synced = clock_synchronized()
        self._dir = open_segment_dir(path)
        try:
            fd = os.open(
                path.name,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o640,
                dir_fd=self._dir,
            )
        except BaseException:
            os.close(self._dir)
            raise
        self._file = FullWriter(fd)
        try:
            os.fsync(self._dir)
            self._container: OutputContainer = av.open(
                self._file, "w", format="mp4", options=_MUXER_OPTIONS
            )
            # 'hvc1' (parameter sets in the sample description) plays in browsers and Apple
            # players; FFmpeg's default 'hev1' does not everywhere.
            self._remux = Remuxer(self._container, tracks, hevc_tag="hvc1")
        except BaseException:
            self._file.close()
            with contextlib.suppress(OSError):
                os.unlink(path.name, dir_fd=self._dir)
            os.close(self._dir)
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

    def close(self, flags: frozenset[str] = frozenset(), *, ended: str = ENDED_CUT) -> Segment:
        """Write the trailer, sync, and rename to the final name.

        The segment's path is relative to the storage root (``<root>/<camera>/<day>/<name>``,
        the layout :func:`open_segment_dir` expects)."""
        self._container.close()
        os.fsync(self._file.fileno())
        size = self._file.tell()
        digest = self._file.sha256 if self._file.hashed_bytes == size else None
        synced = self._clock_synced
        if synced is not None:
            now = clock_synchronized()
            synced = None if now is None else synced and now
        self._file.close()
        final = final_path(self.path)
        os.replace(self.path.name, final.name, src_dir_fd=self._dir, dst_dir_fd=self._dir)
        os.fsync(self._dir)
        os.close(self._dir)
        return dataclasses.replace(
            self._info(final, size, flags), sha256=digest, clock_synced=synced, ended=ended
        )

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
        with contextlib.suppress(OSError):
            os.close(self._dir)

    def _info(self, path: Path, size: int, flags: frozenset[str]) -> Segment:
        video = self._video
        return Segment(
            path=relative_path(path),
            camera=self.camera_id,
            start=self.start,
            end=self.start + self.duration,
            bytes=size,
            frames=self.frames,
            codec=video.codec if video else "none",
            width=video.width if video else 0,
            height=video.height if video else 0,
            has_audio=any(t.kind == "audio" for t in self._remux.tracks),
            flags=flags,
        )
