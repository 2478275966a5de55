"""Source failures, with a short reason fit for status output (never a URL or a secret)."""

from __future__ import annotations

import errno

__all__ = ["SourceError", "describe_error"]


class SourceError(Exception):
    """A camera could not be reached, refused us, or stopped sending.

    ``reason`` is short and safe to show anywhere; ``auth`` marks what retrying at once will not
    fix (refused credentials, a failed TLS check, a flood past the bitrate ceiling): it is retried
    slowly and shown as the ``error`` state.
    """

    def __init__(self, reason: str, *, auth: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.auth = auth


def describe_error(exc: BaseException, *, timeout: float | None = None) -> SourceError:
    """Map an FFmpeg or OS error to a :class:`SourceError` without quoting the URL.

    ``timeout`` is given (seconds waited) when the call ended by running out of time.
    """
    if isinstance(exc, SourceError):
        return exc
    import av  # here, not at the top: the supervisor uses this module without PyAV

    if isinstance(exc, av.error.HTTPUnauthorizedError | av.error.HTTPForbiddenError):
        return SourceError("credentials refused by the camera (401/403)", auth=True)
    if isinstance(exc, av.error.HTTPNotFoundError):
        return SourceError("stream path not found on the camera (404)")
    if isinstance(exc, av.error.FFmpegError):
        code = exc.errno
        if code == errno.ECONNREFUSED:
            return SourceError("connection refused")
        if code in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return SourceError("host unreachable")
        if timeout is not None or code == errno.ETIMEDOUT or isinstance(exc, av.error.ExitError):
            # An interrupted (timed-out) read surfaces as "invalid data" or "exit requested".
            return SourceError(_timed_out(timeout))
        return SourceError(exc.strerror or type(exc).__name__)
    if isinstance(exc, OSError):
        return SourceError(exc.strerror or type(exc).__name__)
    return SourceError(type(exc).__name__)


def _timed_out(timeout: float | None) -> str:
    return f"no data for {timeout:g} s" if timeout is not None else "timed out"
