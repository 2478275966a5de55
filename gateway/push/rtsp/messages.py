"""RTSP/1.0 on the wire: requests built, and what the server sends parsed, bounded.

The server's stream holds responses, interleaved binary frames (``$``, channel, length: RTCP
receiver reports, skipped) and now and then a request of its own (skipped too). Anything
malformed raises :class:`~gateway.push.error.PushError` naming it: a status line that is not
RTSP, headers longer than :data:`MAX_HEAD`, a Content-Length that is not a number or more than
:data:`MAX_BODY`. Headers that are not UTF-8 are read as Latin-1, not refused.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from gateway.push.error import PushError

__all__ = ["MAX_BODY", "MAX_HEAD", "Response", "StreamParser", "request"]

USER_AGENT = "camera-gateway"
MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024
_FRAME = struct.Struct("!cBH")


def request(method: str, url: str, cseq: int, headers: dict[str, str], body: bytes = b"") -> bytes:
    """One request: the request line, CSeq and User-Agent, ``headers``, then ``body``."""
    lines = [f"{method} {url} RTSP/1.0", f"CSeq: {cseq}", f"User-Agent: {USER_AGENT}"]
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    reason: str
    headers: dict[str, str]
    """Lower-case names; a repeated header keeps its last value."""
    cseq: int | None
    challenges: list[str] = field(default_factory=list)
    """Every WWW-Authenticate value, in order."""
    body: bytes = b""


def _show(line: str) -> str:
    return repr(line[:60])


class StreamParser:
    """Responses out of the bytes the server sends; everything else in them is skipped."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Response]:
        self._buffer += data
        responses: list[Response] = []
        while (item := self._one()) is not None:
            if isinstance(item, Response):
                responses.append(item)
        return responses

    def _one(self) -> Response | bool | None:
        """One item off the buffer: a response, True for something skipped, None if the next
        item is not complete yet."""
        buf = self._buffer
        if not buf:
            return None
        if buf[0:1] == b"$":
            if len(buf) < 4:
                return None
            size = _FRAME.unpack_from(buf)[2]
            if len(buf) < 4 + size:
                return None
            del buf[: 4 + size]
            return True
        end = buf.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
        if end < 0:
            if len(buf) > MAX_HEAD:
                raise PushError(f"the centre sent an RTSP header longer than {MAX_HEAD} bytes")
            return None
        raw = bytes(buf[:end])
        try:
            head = raw.decode()
        except UnicodeDecodeError:
            # RTSP says UTF-8, but a centre's Server: or realm in Latin-1 must not cut the
            # police's feed: the fields we act on are ASCII, so read it byte for byte.
            head = raw.decode("latin-1")
        lines = head.split("\r\n")
        headers: dict[str, str] = {}
        challenges: list[str] = []
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                raise PushError(f"malformed RTSP header from the centre: {_show(line)}")
            name, value = name.strip().lower(), value.strip()
            headers[name] = value
            if name == "www-authenticate":
                challenges.append(value)
        length = _content_length(headers.get("content-length"))
        if len(buf) < end + 4 + length:
            return None
        body = bytes(buf[end + 4 : end + 4 + length])
        del buf[: end + 4 + length]
        first = lines[0]
        if not first.startswith("RTSP/"):
            if first.endswith(" RTSP/1.0") and first.count(" ") == 2:
                return True  # a request from the server (rare): not needed for recording
            raise PushError(f"not an RTSP answer from the centre: {_show(first)}")
        return _response(first, headers, challenges, body)


def _content_length(value: str | None) -> int:
    if value is None:
        return 0
    if not value.isdigit():
        raise PushError(f"malformed Content-Length from the centre: {_show(value)}")
    length = int(value)
    if length > MAX_BODY:
        raise PushError(f"the centre announced an RTSP body of {length} bytes (at most {MAX_BODY})")
    return length


def _response(first: str, headers: dict[str, str], challenges: list[str], body: bytes) -> Response:
    parts = first.split(" ", 2)
    if len(parts) < 2 or parts[0] != "RTSP/1.0" or not (parts[1].isdigit() and len(parts[1]) == 3):
        raise PushError(f"malformed RTSP status line from the centre: {_show(first)}")
    cseq_text = headers.get("cseq")
    if cseq_text is not None and not cseq_text.isdigit():
        raise PushError(f"malformed CSeq from the centre: {_show(cseq_text)}")
    return Response(
        status=int(parts[1]),
        reason=parts[2] if len(parts) > 2 else "",
        headers=headers,
        cseq=int(cseq_text) if cseq_text is not None else None,
        challenges=challenges,
        body=body,
    )
