"""Analysis failures, each with a short ``reason`` fit for a log line or the status."""

from __future__ import annotations

__all__ = ["AnalysisError", "DecodeError", "FrameError"]


class AnalysisError(Exception):
    """A picture could not be analysed; ``reason`` is short and safe to show anywhere."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DecodeError(AnalysisError):
    """A keyframe packet could not be decoded into a picture (corrupt, truncated, not a
    keyframe, an unsupported codec, or a picture larger than the decoder accepts)."""


class FrameError(AnalysisError):
    """A picture array cannot be analysed (empty, too small, wrong type or shape)."""
