"""What a clip is made of and what it gives: its sources, the written clip, its error."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gateway.media.codec import Codec

__all__ = ["Clip", "ClipError", "ClipSource", "iso", "why"]


class ClipError(Exception):
    """The clip cannot be written; ``reason`` says why, naming the file concerned."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ClipSource:
    """A finished segment file."""

    path: Path
    start: float
    """Wall-clock time (UTC epoch seconds) of its first packet, as indexed."""


@dataclass(frozen=True, slots=True)
class Clip:
    """A written clip and what it covers."""

    path: Path
    start: float
    """Wall time (UTC epoch seconds) of the first frame written: the file's time zero."""
    end: float
    """Wall time at which the last frame written stops being shown."""
    frames: int
    """Video frames written."""
    codec: Codec
    """``h264`` or ``hevc``."""
    width: int
    height: int
    fps: float | None
    """The recording's average frame rate, if its container states one."""
    has_audio: bool
    sources: tuple[Path, ...]
    """The segments that contributed packets, in order."""
    adjusted: float = 0.0
    """The most, in seconds, by which a segment was placed later than its indexed start so that
    timestamps keep increasing; 0.0 unless two segments overlap by a frame or more."""


def why(exc: BaseException) -> str:
    """FFmpeg's or the OS's words for an error, without PyAV's errno and repeated file name."""
    return str(getattr(exc, "strerror", None) or exc)


def iso(when: float) -> str:
    """``when`` (UTC epoch seconds) as ISO 8601 UTC with microseconds, for messages and
    metadata."""
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
