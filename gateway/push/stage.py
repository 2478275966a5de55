"""What the RTMP and RTSP sessions share: the bytes owed to the centre, the stage the exchange
is at, and the rule that bad input from the centre fails the session for good."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Generic, TypeVar

from gateway.push.error import PushError

__all__ = ["SessionStage"]

E = TypeVar("E")


class SessionStage(ABC, Generic[E]):
    """Base of a protocol session; ``E`` is its event type. A subclass appends to ``_out`` and
    implements :meth:`_take`."""

    def __init__(self, stage: str) -> None:
        self._out = bytearray()
        self.stage = stage
        """Where the exchange is; ``failed`` or ``closed`` once over."""

    def data_to_send(self) -> bytes:
        """Bytes the session owes the centre (empty if none); taken once."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def receive(self, data: bytes) -> list[E]:
        """Take bytes from the centre; what happened. :class:`PushError` on a refusal or
        malformed data, after which the session takes nothing more."""
        if self.stage in ("failed", "closed"):
            return []
        try:
            return self._take(data)
        except PushError:
            self.stage = "failed"
            raise

    @abstractmethod
    def _take(self, data: bytes) -> list[E]:
        """The protocol's own reading of the centre's bytes."""
