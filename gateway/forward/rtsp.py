"""RTSP push (ANNOUNCE/SETUP/RECORD, RTP interleaved over TCP), written for this daemon.

Spoken over a socket from :func:`~gateway.forward.connection.open_uplink`, so RTSPS gets the
same certificate checks as everything else, and nothing here holds the interpreter lock while
waiting on the network (FFmpeg's muxer does, during its whole handshake). Basic and Digest
authentication; keep-alive with OPTIONS; RTCP sender reports every few seconds.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import select
import socket
import ssl
import struct
import time

from gateway.clock import wall_at
from gateway.forward.connection import Outbox, PushError
from gateway.forward.publisher import PushUrl
from gateway.forward.rtp import RtpTrack, clock_rate, payload_type
from gateway.forward.sdp import RTSP_CODECS, describe
from gateway.media.packet import Packet, Track

__all__ = ["RtspPublisher"]

_USER_AGENT = "camera-gateway"
_SENDER_REPORT_EVERY = 5.0
_MAX_RESPONSE = 64 * 1024
_AUTH_FIELD = re.compile(r'(\w+)=(?:"([^"]*)"|([^,\s]+))')


class RtspPublisher:
    """One RTSP RECORD session; see :class:`~gateway.forward.publisher.Publisher`."""

    def __init__(
        self, sock: socket.socket, url: PushUrl, tracks: tuple[Track, ...], *, timeout: float
    ) -> None:
        self._sock = sock
        self._url = url
        self._timeout = timeout
        sock.settimeout(timeout)
        self._outbox = Outbox(sock)
        self.skipped = [t for t in tracks if t.codec not in RTSP_CODECS]
        carried = [t for t in tracks if t.codec in RTSP_CODECS]
        self._channels: dict[int, tuple[int, RtpTrack]] = {}
        self._sdp_tracks: list[tuple[Track, int]] = []
        for index, track in enumerate(carried):
            pt = payload_type(track.codec, track.sample_rate, track.channels, 96 + index)
            rtp = RtpTrack(track.codec, pt, clock_rate(track.codec, track.sample_rate))
            self._channels[track.index] = (2 * index, rtp)
            self._sdp_tracks.append((track, pt))
        self._cseq = 0
        self._session: str | None = None
        self._keepalive = 60.0
        self._last_request = time.monotonic()
        self._last_report = 0.0
        self._authorization: _Auth | None = None
        self._inbox = bytearray()
        self._base: float | None = None

    # -- Publisher -----------------------------------------------------------------------------

    def start(self) -> None:
        if not any(t.kind == "video" for t, _ in self._sdp_tracks):
            raise PushError("no video track that RTSP can carry")
        base = self._url.request_url()
        self._request("OPTIONS", base)
        sdp = describe(self._sdp_tracks, host=self._url.host).encode()
        self._request("ANNOUNCE", base, {"Content-Type": "application/sdp"}, sdp)
        for index, _ in enumerate(self._sdp_tracks):
            transport = f"RTP/AVP/TCP;unicast;interleaved={2 * index}-{2 * index + 1};mode=record"
            headers = {"Transport": transport}
            response = self._request("SETUP", f"{base.rstrip('/')}/streamid={index}", headers)
            session = response.headers.get("session")
            if session and self._session is None:
                value, _, params = session.partition(";")
                self._session = value.strip()
                timeout = re.search(r"timeout=(\d+)", params)
                if timeout:
                    self._keepalive = max(5.0, int(timeout.group(1)) / 2)
        self._request("RECORD", base, {"Range": "npt=0.000-"})

    @property
    def ready(self) -> bool:
        return self._outbox.ready

    @property
    def bytes_sent(self) -> int:
        return self._outbox.bytes_sent

    def send(self, packet: Packet, *, wait: bool = True) -> None:
        entry = self._channels.get(packet.track)
        if entry is None:
            return
        channel, rtp = entry
        if self._base is None:
            self._base = packet.seconds
        timestamp = rtp.timestamp(packet.pts * packet.scale - self._base)
        frames = rtp.interleaved(packet.data, timestamp, channel)
        now = time.monotonic()
        if now - self._last_report >= _SENDER_REPORT_EVERY and packet.is_video:
            self._last_report = now
            for ch, track in self._channels.values():
                if track.packets:
                    report = track.sender_report(wall_at(packet.received), track.last_timestamp)
                    frames += struct.pack("!cBH", b"$", ch + 1, len(report)) + report
        self._write(frames, wait=wait)

    def poll(self) -> None:
        if self._outbox.pending:
            self._write(b"")
        self._drain_incoming()
        if self._session and time.monotonic() - self._last_request > self._keepalive:
            self._send_request("OPTIONS", self._url.request_url(), {}, b"")

    def close(self) -> None:
        with contextlib.suppress(PushError, OSError):
            if self._session:
                self._sock.settimeout(1.0)
                self._send_request("TEARDOWN", self._url.request_url(), {}, b"")
        with contextlib.suppress(OSError):
            self._sock.close()

    # -- requests ------------------------------------------------------------------------------

    def _request(
        self, method: str, url: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> _Response:
        headers = headers or {}
        response = self._exchange(method, url, headers, body)
        if response.status == 401 and self._authorization is None:
            challenge = response.headers.get("www-authenticate", "")
            if not self._url.username:
                raise PushError(f"{method}: the centre requires credentials", auth=True)
            self._authorization = _Auth.from_challenge(
                challenge, self._url.username, self._url.password or ""
            )
            response = self._exchange(method, url, headers, body)
        if response.status in (401, 403):
            raise PushError(
                f"{method}: credentials refused by the centre ({response.status})", auth=True
            )
        if response.status != 200:
            raise PushError(f"{method} refused by the centre: {response.status} {response.reason}")
        return response

    def _exchange(self, method: str, url: str, headers: dict[str, str], body: bytes) -> _Response:
        cseq = self._send_request(method, url, headers, body)
        deadline = time.monotonic() + self._timeout
        while True:
            response = self._read_message(deadline)
            if response is not None and response.cseq == cseq:
                return response

    def _send_request(self, method: str, url: str, headers: dict[str, str], body: bytes) -> int:
        self._cseq += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self._cseq}", f"User-Agent: {_USER_AGENT}"]
        if self._session:
            lines.append(f"Session: {self._session}")
        if self._authorization is not None:
            lines.append(f"Authorization: {self._authorization.header(method, url)}")
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        if body:
            lines.append(f"Content-Length: {len(body)}")
        self._write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        self._last_request = time.monotonic()
        return self._cseq

    def _write(self, data: bytes | bytearray, *, wait: bool = True) -> None:
        """Send ``data`` after anything left from a write that did not wait; with ``wait``
        False, leave what the socket does not take at once for the next write."""
        try:
            self._outbox.write(data, wait=wait)
        except TimeoutError:
            raise PushError(f"uplink stalled for {self._timeout:g} s") from None
        except (ssl.SSLError, OSError) as exc:
            raise PushError(f"connection to the centre lost ({_reason(exc)})") from None

    # -- incoming ------------------------------------------------------------------------------

    def _drain_incoming(self) -> None:
        """Consume what the server sent (RTCP, responses) without waiting."""
        while self._readable():
            self._receive()
            while self._parse_one() is not None:
                pass

    def _readable(self) -> bool:
        if isinstance(self._sock, ssl.SSLSocket) and self._sock.pending():
            return True
        ready, _, _ = select.select([self._sock], [], [], 0)
        return bool(ready)

    def _receive(self) -> None:
        try:
            data = self._sock.recv(65536)
        except TimeoutError:
            raise PushError(f"the centre did not answer within {self._timeout:g} s") from None
        except (ssl.SSLError, OSError) as exc:
            raise PushError(f"connection to the centre lost ({_reason(exc)})") from None
        if not data:
            raise PushError("the centre closed the connection")
        self._inbox += data
        if len(self._inbox) > _MAX_RESPONSE * 4:
            raise PushError("the centre sent more than an RTSP session needs")

    def _read_message(self, deadline: float) -> _Response | None:
        while True:
            parsed = self._parse_one()
            if parsed is not None:
                return parsed if isinstance(parsed, _Response) else None
            if time.monotonic() > deadline:
                raise PushError(f"the centre did not answer within {self._timeout:g} s")
            self._receive()

    def _parse_one(self) -> _Response | bool | None:
        """One message off the inbox: a response, True for skipped data, None if incomplete."""
        inbox = self._inbox
        if not inbox:
            return None
        if inbox[0:1] == b"$":
            if len(inbox) < 4:
                return None
            size = struct.unpack_from("!H", inbox, 2)[0]
            if len(inbox) < 4 + size:
                return None
            del inbox[: 4 + size]  # RTCP receiver reports: nothing to act on
            return True
        end = inbox.find(b"\r\n\r\n")
        if end < 0:
            if len(inbox) > _MAX_RESPONSE:
                raise PushError("malformed answer from the centre")
            return None
        head = bytes(inbox[:end]).decode("latin-1")
        lines = head.split("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if len(inbox) < end + 4 + length:
            return None
        del inbox[: end + 4 + length]
        first = lines[0].split(" ", 2)
        if not first[0].startswith("RTSP/"):
            return True  # a request from the server (rare): not needed for recording
        try:
            status = int(first[1])
        except (IndexError, ValueError):
            raise PushError("malformed answer from the centre") from None
        return _Response(
            status=status,
            reason=first[2] if len(first) > 2 else "",
            headers=headers,
            cseq=int(headers.get("cseq", "-1") or -1),
        )


class _Response:
    __slots__ = ("cseq", "headers", "reason", "status")

    def __init__(self, *, status: int, reason: str, headers: dict[str, str], cseq: int) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.cseq = cseq


class _Auth:
    """Basic or Digest (MD5, RFC 2617) credentials for the session's requests."""

    def __init__(self, scheme: str, user: str, password: str, params: dict[str, str]) -> None:
        self.scheme = scheme
        self.user = user
        self.password = password
        self.params = params
        self.count = 0

    @classmethod
    def from_challenge(cls, challenge: str, user: str, password: str) -> _Auth:
        scheme = challenge.split(" ", 1)[0].lower()
        params = {m[1].lower(): m[2] or m[3] for m in _AUTH_FIELD.finditer(challenge)}
        if scheme == "digest":
            return cls("digest", user, password, params)
        return cls("basic", user, password, {})

    def header(self, method: str, uri: str) -> str:
        if self.scheme == "basic":
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            return f"Basic {token}"
        realm, nonce = self.params.get("realm", ""), self.params.get("nonce", "")
        ha1 = _md5(f"{self.user}:{realm}:{self.password}")
        ha2 = _md5(f"{method}:{uri}")
        fields = [f'username="{self.user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
        qop = self.params.get("qop", "")
        if "auth" in qop.split(","):
            self.count += 1
            nc = f"{self.count:08x}"
            cnonce = os.urandom(8).hex()
            response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
            fields += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
        else:
            response = _md5(f"{ha1}:{nonce}:{ha2}")
        fields.append(f'response="{response}"')
        if "opaque" in self.params:
            fields.append(f'opaque="{self.params["opaque"]}"')
        return "Digest " + ", ".join(fields)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or "TLS error"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return type(exc).__name__
