"""What a push protocol implements (one session over an open uplink socket), and the push URL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote, urlsplit

from gateway.media.packet import Packet, Track

__all__ = ["Publisher", "PushUrl"]

DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "rtmp": 1935, "rtmps": 443}


@dataclass(frozen=True, slots=True)
class PushUrl:
    """A push URL taken apart; ``password`` is a secret (never log this object's fields)."""

    scheme: str
    host: str
    port: int
    path: str
    """Path and query, as sent in requests: ``/res-0042/hall-a?token=x``."""
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> PushUrl:
        parts = urlsplit(url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return cls(
            scheme=parts.scheme,
            host=parts.hostname or "",
            port=parts.port or DEFAULT_PORTS[parts.scheme],
            path=path,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
        )

    @property
    def secure(self) -> bool:
        return self.scheme in ("rtsps", "rtmps")

    def request_url(self) -> str:
        """The URL as the server sees it in requests: no credentials."""
        port = "" if self.port == DEFAULT_PORTS[self.scheme] else f":{self.port}"
        return f"{self.scheme}://{self.host}{port}{self.path}"


class Publisher(Protocol):
    """One push session. Every method may raise :class:`~gateway.push.error.PushError`.

    Built with ``(sock, url, tracks, timeout=...)``; ``sock`` is connected (TLS done) and owned
    by the publisher from then on.
    """

    @property
    def bytes_sent(self) -> int:
        """Bytes the socket has taken since the connection opened."""
        ...

    skipped: list[Track]
    """Tracks this protocol cannot carry (left out of the session)."""

    def start(self) -> None:
        """Handshake until the server accepts media (RTSP RECORD, RTMP publish)."""
        ...

    @property
    def ready(self) -> bool:
        """A write that does not wait can be made now: nothing is left from the previous one
        and the socket has room (see :func:`~gateway.push.transport.writable`)."""
        ...

    def send(self, packet: Packet, *, wait: bool = True) -> None:
        """Send one packet (video: an Annex B access unit; AAC: one raw frame).

        With ``wait`` False, nothing blocks: what the socket does not take at once is kept and
        sent first by the next write (or :meth:`poll`), so nothing is reordered or lost.
        """
        ...

    def poll(self) -> None:
        """Finish a write that did not wait, then read and answer whatever the server sent
        (keep-alives, reports) without waiting for more."""
        ...

    def close(self) -> None:
        """End the session politely (TEARDOWN, deleteStream), within a short bounded time."""
        ...
