"""Where segments live and how their names carry camera and UTC start time.

``<root>/<camera>/<YYYY-MM-DD>/<camera>_<YYYYMMDDTHHMMSS.mmm>Z.mp4``; a segment being written has
the extra suffix ``.part``, so it can be recognised (and repaired) after a crash. Files that
cannot be used are moved to ``<root>/quarantine/<camera>/<YYYY-MM-DD>/<name>.quarantined``:
nothing there is named like a recording, so no tool that looks for ``*.mp4`` mistakes one for
a recording.

Everything read back from the tree or from the index is checked against these patterns before
it is opened or deleted: a path is trusted only once it is exactly one of ours.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = [
    "FINAL_SUFFIX",
    "MARKER_NAME",
    "PART_SUFFIX",
    "QUARANTINE_DIR",
    "QUARANTINE_SUFFIX",
    "RESERVED_DIRS",
    "BadPathError",
    "SegmentName",
    "check_quarantine_path",
    "check_segment_path",
    "final_path",
    "has_segment_shape",
    "is_camera_dir",
    "is_day_dir",
    "open_dir",
    "open_root",
    "parse_rebuild_temp",
    "parse_segment_path",
    "quarantine_name",
    "quarantined_original",
    "rebuild_temp_path",
    "segment_path",
]

FINAL_SUFFIX = ".mp4"
MARKER_NAME = ".camera-gateway-storage"
"""The file that says a folder is a storage area (a worker refuses to record where it is gone:
an unmounted disk leaves the empty mount point)."""
PART_SUFFIX = ".mp4.part"
QUARANTINE_DIR = "quarantine"
QUARANTINE_SUFFIX = ".quarantined"
RESERVED_DIRS = frozenset({QUARANTINE_DIR, "audit", "keys"})
"""Folders of the root that are never camera folders: the quarantine, and the audit journal's
default place (``audit.path`` defaults to ``<storage.path>/audit``)."""

_CAMERA = r"[a-z0-9_-]{1,32}"
_STAMP = r"\d{8}T\d{6}\.\d{3}"
_NAME = re.compile(rf"^(?P<camera>{_CAMERA})_(?P<stamp>{_STAMP})Z(?P<suffix>\.mp4(?:\.part)?)$")
_CAMERA_DIR = re.compile(rf"^{_CAMERA}$")
_DAY_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_QUARANTINED = re.compile(
    rf"^(?P<name>{_CAMERA}_{_STAMP}Z\.mp4(?:\.part)?)(?:\.\d{{1,6}})?{re.escape(QUARANTINE_SUFFIX)}$"
)
_REBUILD_PREFIX = "."
_REBUILD_SUFFIX = ".rebuild"


class BadPathError(ValueError):
    """A path read from the index or the tree is not one of ours; the message says why."""


@dataclass(frozen=True, slots=True)
class SegmentName:
    camera: str
    start: float
    """UNIX seconds, UTC, millisecond precision."""
    partial: bool
    day: str = ""
    """``YYYY-MM-DD`` of the start (the folder the file belongs in)."""


def segment_path(root: Path, camera: str, start: float) -> Path:
    """Path of a new segment (being written: ``.part``)."""
    moment = datetime.fromtimestamp(start, UTC)
    stamp = moment.strftime("%Y%m%dT%H%M%S.") + f"{moment.microsecond // 1000:03d}"
    day = moment.strftime("%Y-%m-%d")
    return root / camera / day / f"{camera}_{stamp}Z{PART_SUFFIX}"


def final_path(part: Path) -> Path:
    """The finished name of a ``.part`` segment."""
    if not part.name.endswith(PART_SUFFIX):
        raise ValueError(f"not a segment being written: {part}")
    return part.with_name(part.name[: -len(".part")])


def parse_segment_path(path: Path) -> SegmentName | None:
    """Camera and start time from a segment file name, or None if it is not one of ours."""
    return _parse_name(path.name)


def _parse_name(name: str) -> SegmentName | None:
    match = _NAME.match(name)
    if match is None:
        return None
    stamp = match["stamp"]
    try:  # the pattern lets through dates that do not exist (month 13, second 61)
        moment = datetime(
            int(stamp[0:4]),
            int(stamp[4:6]),
            int(stamp[6:8]),
            int(stamp[9:11]),
            int(stamp[11:13]),
            int(stamp[13:15]),
            int(stamp[16:19]) * 1000,
            tzinfo=UTC,
        )  # not strptime, which costs 15 µs a name: a month of 64 cameras is 2.7 million
    except ValueError:
        return None
    return SegmentName(
        camera=match["camera"],
        start=moment.timestamp(),
        partial=match["suffix"] == PART_SUFFIX,
        day=f"{stamp[0:4]}-{stamp[4:6]}-{stamp[6:8]}",
    )


def has_segment_shape(name: str) -> bool:
    """``name`` is shaped like a segment's (its date is not checked: a quick test for walks)."""
    return _NAME.match(name) is not None


def is_camera_dir(name: str) -> bool:
    """A folder name of the root that may hold a camera's recordings."""
    return _CAMERA_DIR.match(name) is not None and name not in RESERVED_DIRS


def is_day_dir(name: str) -> bool:
    return _DAY_DIR.match(name) is not None


def check_segment_path(relative: str) -> SegmentName:
    """The name of a finished segment given relative to the root; :class:`BadPathError` otherwise.

    Exactly ``<camera>/<YYYY-MM-DD>/<camera>_<stamp>Z.mp4``, with camera and day agreeing with
    the file name: retention deletes nothing else, whatever an index row says.
    """
    parts = relative.split("/")
    if len(parts) != 3:
        raise BadPathError(f"{relative!r} is not <camera>/<day>/<file>")
    camera, day, name = parts
    parsed = _parse_name(name)
    if parsed is None or parsed.partial:
        raise BadPathError(f"{relative!r}: {name!r} is not a finished segment name")
    if not is_camera_dir(camera) or camera != parsed.camera:
        raise BadPathError(f"{relative!r}: folder {camera!r} is not camera {parsed.camera!r}")
    if day != parsed.day:
        raise BadPathError(f"{relative!r}: folder {day!r} is not the day {parsed.day} of the file")
    return parsed


def check_quarantine_path(relative: str) -> None:
    """Raise :class:`BadPathError` unless ``relative`` is ``quarantine/<camera>/<day>/<file>``."""
    parts = relative.split("/")
    if len(parts) != 4 or parts[0] != QUARANTINE_DIR:
        raise BadPathError(f"{relative!r} is not {QUARANTINE_DIR}/<camera>/<day>/<file>")
    _, camera, day, name = parts
    if _CAMERA_DIR.match(camera) is None or not is_day_dir(day):
        raise BadPathError(f"{relative!r}: {camera!r}/{day!r} is not <camera>/<day>")
    if _QUARANTINED.match(name) is None:
        raise BadPathError(f"{relative!r}: {name!r} is not a quarantined segment name")


def quarantine_name(name: str, attempt: int) -> str:
    """The name a file takes in the quarantine: ``<name>.quarantined``, then
    ``<name>.1.quarantined``, ``<name>.2.quarantined``... when taken."""
    return f"{name}{QUARANTINE_SUFFIX}" if attempt == 0 else f"{name}.{attempt}{QUARANTINE_SUFFIX}"


def quarantined_original(name: str) -> str | None:
    """The name a quarantined file had before it was moved, or None if it is not one."""
    match = _QUARANTINED.match(name)
    return match["name"] if match is not None else None


def rebuild_temp_path(final: Path) -> Path:
    """Where the rebuilt copy of a damaged ``.part`` is written before it takes ``final``'s name.

    Hidden and without the segment suffix, so nothing mistakes it for a segment; recovery
    recognises it with :func:`parse_rebuild_temp` after a crash.
    """
    return final.with_name(f"{_REBUILD_PREFIX}{final.name}{_REBUILD_SUFFIX}")


def parse_rebuild_temp(name: str) -> str | None:
    """The finished segment name a rebuild temporary file stands for, or None."""
    if not (name.startswith(_REBUILD_PREFIX) and name.endswith(_REBUILD_SUFFIX)):
        return None
    final = name[len(_REBUILD_PREFIX) : -len(_REBUILD_SUFFIX)]
    parsed = _parse_name(final)
    return final if parsed is not None and not parsed.partial else None


# -- access inside the root -----------------------------------------------------------------

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def open_root(root: Path) -> int:
    """A descriptor of the storage root itself (the configured path, which may be a link)."""
    return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def open_dir(root_fd: int, parts: Sequence[str], *, create: bool = False) -> int:
    """A descriptor of ``<root>/<parts...>``, each folder opened with ``O_NOFOLLOW``.

    A symbolic link anywhere on the way raises ``OSError`` (``ELOOP`` or ``ENOTDIR``) instead
    of being followed, so nothing outside the root is reached, whatever was swapped in.
    ``create``: missing folders are made (mode 0750).
    """
    fd = os.dup(root_fd)
    try:
        for part in parts:
            if part in ("", ".", "..") or "/" in part or "\0" in part:
                raise BadPathError(f"{part!r} is not a folder name")
            if create:
                with suppress(FileExistsError):
                    os.mkdir(part, 0o750, dir_fd=fd)
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd
