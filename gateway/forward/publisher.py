"""What a push protocol implements: one session over an open uplink socket."""

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
    """One push session. Every method may raise :class:`~gateway.forward.connection.PushError`.

    Built with ``(sock, url, tracks, timeout=...)``; ``sock`` is connected (TLS done) and owned
    by the publisher from then on.
    """

    bytes_sent: int
    skipped: list[Track]
    """Tracks this protocol cannot carry (left out of the session)."""

    def start(self) -> None:
        """Handshake until the server accepts media (RTSP RECORD, RTMP publish)."""
        ...

    def send(self, packet: Packet) -> None:
        """Send one packet (video: an Annex B access unit; AAC: one raw frame)."""
        ...

    def poll(self) -> None:
        """Read and answer whatever the server sent (keep-alives, reports); never blocks."""
        ...

    def close(self) -> None:
        """End the session politely (TEARDOWN, deleteStream), within a short bounded time."""
        ...
