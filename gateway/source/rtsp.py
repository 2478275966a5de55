"""RTSP and RTSPS pull over TCP, by packet (stream copy: nothing is decoded here).

FFmpeg's RTSP client does the RTSP. For ``rtsps://`` the TLS is ours: FFmpeg's would accept any
certificate and hand the camera's password to whoever answers. The source connects, verifies the
camera (:mod:`gateway.source.tls`) and only then lets FFmpeg speak, in plain RTSP, to a loopback
relay bridged to that TLS connection (:mod:`gateway.source.tlsrelay`). A camera that fails the
check never sees a request, so never our password.
"""

from __future__ import annotations

import errno
import logging
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import av
from av.container import InputContainer
from av.packet import Packet as AvPacket
from av.stream import Stream

from gateway.media.normalize import RawPacket
from gateway.media.packet import Track, track_from_stream
from gateway.source.errors import SourceError, describe_error
from gateway.source.timeouts import OPEN_TIMEOUT, READ_TIMEOUT
from gateway.source.tls import TlsError, TlsPolicy, handshake
from gateway.source.tlsrelay import TlsRelay

__all__ = ["OPEN_TIMEOUT", "READ_TIMEOUT", "RTSPS_PORT", "RtspSource"]

log = logging.getLogger(__name__)

RTSPS_PORT = 322
"""The port of ``rtsps://`` when the URL gives none (RFC 7826, and FFmpeg's default)."""

# Probe little: the SDP already names the codecs, and every probed second delays recording.
_FAST_PROBE = {"analyzeduration": "200000", "probesize": "65536"}
_SLOW_PROBE = {"analyzeduration": "2000000", "probesize": "1000000"}


class RtspSource:
    """Pulls one RTSP(S) URL with PyAV (FFmpeg's RTSP client), interleaved over TCP.

    ``url`` may hold the credentials. ``tls`` says how an ``rtsps://`` camera is checked (by
    default against the system CAs); it is not used for ``rtsp://``.
    """

    def __init__(
        self, url: str, *, camera_id: str, audio: bool = True, tls: TlsPolicy | None = None
    ) -> None:
        self._url = url
        self._camera_id = camera_id
        self._audio = audio
        self._tls = tls if tls is not None else TlsPolicy()
        self._relay: TlsRelay | None = None
        self._container: InputContainer | None = None
        self._packets: Iterator[AvPacket[Stream]] | None = None
        self._index: dict[int, int] = {}
        self._slow_probe = False

    def open(self) -> tuple[Track, ...]:
        options = {
            "rtsp_transport": "tcp",
            # FFmpeg's own socket timeout bounds each read. PyAV's read timeout is not used: its
            # check takes the GIL on every FFmpeg I/O call, which costs more than the recording.
            "timeout": str(int(READ_TIMEOUT * 1_000_000)),
            **(_SLOW_PROBE if self._slow_probe else _FAST_PROBE),
        }
        started = time.monotonic()
        url = self._url
        if urlsplit(url).scheme == "rtsps":
            url = self._connect_tls()
        try:
            container = av.open(url, options=options, timeout=(OPEN_TIMEOUT, None))
        except Exception as exc:  # FFmpeg raises many types; each is mapped to a short reason
            error = self._relay_failure() or _reason(exc, started)
            self.close()
            raise error from None
        self._container = container
        video = next(iter(container.streams.video), None)
        if video is None:
            self.close()
            raise SourceError("the camera offers no video track")
        if not getattr(video.codec_context, "width", 0):
            # Probing was too short to learn the picture size; probe longer next time.
            self._slow_probe = True
            self.close()
            raise SourceError("video size unknown after probing; retrying with a longer probe")
        selected = [video, *(container.streams.audio if self._audio else ())]
        tracks = tuple(track_from_stream(i, s) for i, s in enumerate(selected))
        self._index = {s.index: i for i, s in enumerate(selected)}
        self._packets = container.demux(selected)
        return tracks

    def read(self) -> RawPacket:
        if self._packets is None:
            raise SourceError("not connected")
        while True:
            started = time.monotonic()
            try:
                packet = next(self._packets)
            except StopIteration:
                raise self._relay_failure() or SourceError("the camera ended the stream") from None
            except Exception as exc:
                raise self._relay_failure() or _reason(exc, started) from None
            if packet.size == 0:
                continue
            track = self._index.get(packet.stream.index)
            if track is None:
                continue
            return RawPacket(
                track=track,
                data=bytes(packet),
                pts=packet.pts,
                dts=packet.dts,
                duration=packet.duration or 0,
                keyframe=packet.is_keyframe,
                received=time.monotonic(),
            )

    def close(self) -> None:
        container, self._container, self._packets = self._container, None, None
        if container is not None:
            try:
                container.close()
            except Exception as exc:  # closing a broken connection may fail again; nothing to do
                log.debug("camera %s: error while closing: %s", self._camera_id, type(exc).__name__)
        relay, self._relay = self._relay, None
        if relay is not None:
            relay.close()  # after FFmpeg's TEARDOWN has gone through it

    def _connect_tls(self) -> str:
        """Connect to the camera and verify it; the loopback URL FFmpeg is to open instead.

        Only the scheme and the address change: the path and query (and the credentials) are the
        camera's, so the camera sees the requests it expects, addressed to ``127.0.0.1:<port>``.
        """
        parts = urlsplit(self._url)
        host, port = parts.hostname or "", parts.port or RTSPS_PORT
        started = time.monotonic()
        try:
            raw = socket.create_connection((host, port), timeout=OPEN_TIMEOUT)
        except OSError as exc:
            raise SourceError(_connect_reason(exc)) from None
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Connection and handshake share one OPEN_TIMEOUT; FFmpeg's open has its own after.
        raw.settimeout(max(0.5, OPEN_TIMEOUT - (time.monotonic() - started)))
        try:
            link = handshake(raw, host, self._tls, peer="camera")
        except TlsError as exc:
            # A camera that fails the checks is retried slowly, like refused credentials.
            raise SourceError(exc.reason, auth=exc.untrusted) from None
        try:
            self._relay = TlsRelay(link, name=f"{self._camera_id}/tls", accept_timeout=OPEN_TIMEOUT)
        except (OSError, RuntimeError) as exc:  # no socket or thread left for the relay
            link.sock.close()
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise SourceError(f"cannot start the TLS relay: {detail}") from None
        userinfo, at, _ = parts.netloc.rpartition("@")
        netloc = f"{userinfo}{at}127.0.0.1:{self._relay.port}"
        return urlunsplit(("rtsp", netloc, parts.path, parts.query, ""))

    def _relay_failure(self) -> SourceError | None:
        """The relay's reason, when FFmpeg failed because the camera's TLS link broke."""
        relay = self._relay
        if relay is None or relay.failure is None:
            return None
        return SourceError(relay.failure)


def _connect_reason(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {OPEN_TIMEOUT:g} s"
    if isinstance(exc, socket.gaierror):
        return "cannot resolve the camera's host name"
    if exc.errno == errno.ECONNREFUSED:
        return "connection refused"
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "host unreachable"
    return exc.strerror or type(exc).__name__


def _reason(exc: BaseException, started: float) -> SourceError:
    waited = time.monotonic() - started
    return describe_error(exc, timeout=round(waited) if waited >= READ_TIMEOUT * 0.9 else None)
