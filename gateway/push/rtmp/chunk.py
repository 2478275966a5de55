"""RTMP chunk streams: messages cut into chunks for sending, and the server's chunks put back
together into messages, bounded against hostile sizes (chunk size, message length, streams)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.push.error import PushError

__all__ = [
    "MAX_CHUNK_SIZE",
    "MAX_MESSAGE",
    "ChunkReader",
    "ChunkWriter",
    "Message",
    "MessageType",
]

MAX_CHUNK_SIZE = 0xFFFFFF
"""The largest chunk size that means anything: a message is at most that long."""
MAX_MESSAGE = 256 * 1024
"""What a server sends a publisher is commands and control, a few hundred bytes each."""
MAX_STREAMS = 64
"""Chunk streams a server may use at once (each holds a partial message)."""
_U32 = struct.Struct(">I")
_MESSAGE_HEADER_LENGTHS = (11, 7, 3, 0)


class MessageType:
    """RTMP message type ids."""

    SET_CHUNK_SIZE = 1
    ABORT = 2
    ACK = 3
    USER_CONTROL = 4
    WINDOW_ACK_SIZE = 5
    SET_PEER_BANDWIDTH = 6
    AUDIO = 8
    VIDEO = 9
    AMF3_COMMAND = 17
    DATA = 18
    COMMAND = 20


@dataclass(frozen=True, slots=True)
class Message:
    kind: int
    stream: int
    timestamp: int
    payload: bytes


class ChunkWriter:
    """Messages as chunks of ``chunk_size``: type 0 (or type 1 with a delta when the chunk
    stream already carries this message stream and time goes forward), then type 3
    continuations. One ``bytes`` per message, built with one join. Chunk stream ids are 2 to
    63 (one-byte basic headers): a publisher needs a handful."""

    def __init__(self, chunk_size: int) -> None:
        self.chunk_size = chunk_size
        self._last: dict[int, tuple[int, int]] = {}

    def message(
        self, csid: int, kind: int, timestamp: int, parts: Sequence[bytes | memoryview], stream: int
    ) -> bytes:
        length = sum(len(p) for p in parts)
        timestamp &= 0xFFFFFFFF
        previous = self._last.get(csid)
        self._last[csid] = (timestamp, stream)
        if previous is None or previous[1] != stream or timestamp < previous[0]:
            value = timestamp
            tail = length.to_bytes(3, "big") + bytes((kind,)) + stream.to_bytes(4, "little")
            first = csid
        else:
            value = timestamp - previous[0]
            tail = length.to_bytes(3, "big") + bytes((kind,))
            first = 0x40 | csid
        if value >= 0xFFFFFF:
            extended = _U32.pack(value)
            header = bytes((first, 0xFF, 0xFF, 0xFF)) + tail + extended
        else:
            extended = b""
            header = bytes((first,)) + value.to_bytes(3, "big") + tail
        return _chunked(header, bytes((0xC0 | csid,)) + extended, parts, self.chunk_size)


def _chunked(
    header: bytes, continuation: bytes, parts: Sequence[bytes | memoryview], chunk_size: int
) -> bytes:
    """``header``, the parts cut into chunks of ``chunk_size`` with ``continuation`` between."""
    out: list[bytes | memoryview] = [header]
    room = chunk_size
    for part in parts:
        size = len(part)
        if size <= room:
            out.append(part)
            room -= size
            continue
        view = memoryview(part)
        pos = 0
        while size - pos > room:
            if room:
                out.append(view[pos : pos + room])
                pos += room
            out.append(continuation)
            room = chunk_size
        out.append(view[pos:])
        room -= size - pos
    return b"".join(out)


@dataclass(slots=True)
class _InStream:
    """Receiving state of one chunk stream."""

    timestamp: int = 0
    delta: int = 0
    length: int = 0
    kind: int = 0
    stream: int = 0
    extended: bool = False
    partial: bytearray = field(default_factory=bytearray)


class ChunkReader:
    """Reassembles the server's chunks into messages (any chunk type, size and stream).

    Set Chunk Size and Abort are acted on here (and still returned). Anything out of bounds
    raises :class:`PushError`: a chunk size of 0 or above :data:`MAX_CHUNK_SIZE`, a message
    longer than :data:`MAX_MESSAGE`, more than :data:`MAX_STREAMS` chunk streams, a chunk that
    continues a chunk stream never started.
    """

    def __init__(self) -> None:
        self.chunk_size = 128
        self._buffer = bytearray()
        self._streams: dict[int, _InStream] = {}

    def feed(self, data: bytes) -> list[Message]:
        buf = self._buffer
        buf += data
        messages: list[Message] = []
        pos = 0
        try:
            while consumed := self._chunk(buf, pos, messages):
                pos += consumed
        finally:
            del buf[:pos]
        return messages

    def _chunk(self, buf: bytearray, pos: int, messages: list[Message]) -> int:
        """Parse one chunk at ``pos``; return its size, or 0 if it is not complete yet."""
        start = pos
        basic = _basic_header(buf, pos)
        if basic is None:
            return 0
        fmt, csid, pos = basic
        size = _MESSAGE_HEADER_LENGTHS[fmt]
        if pos + size > len(buf):
            return 0
        stream = self._streams.get(csid)
        if stream is None:
            if fmt != 0:
                raise PushError(f"RTMP chunk of type {fmt} starts chunk stream {csid}")
            if len(self._streams) >= MAX_STREAMS:
                raise PushError(f"the centre used more than {MAX_STREAMS} RTMP chunk streams")
            stream = self._streams[csid] = _InStream()
        header = bytes(buf[pos : pos + size])
        pos += size
        ts_field = int.from_bytes(header[:3], "big") if fmt < 3 else 0
        extended = ts_field == 0xFFFFFF if fmt < 3 else stream.extended
        if extended:
            if pos + 4 > len(buf):
                return 0
            ts_field = _U32.unpack_from(buf, pos)[0]
            pos += 4
        new_message = not stream.partial
        length, kind, msid = stream.length, stream.kind, stream.stream
        if fmt <= 1:
            length = int.from_bytes(header[3:6], "big")
            kind = header[6]
            if length > MAX_MESSAGE:
                raise PushError(
                    f"the centre sent an RTMP message of {length} bytes (at most {MAX_MESSAGE})"
                )
        if fmt == 0:
            msid = int.from_bytes(header[7:11], "little")
        need = min(self.chunk_size, length - len(stream.partial))
        if pos + need > len(buf):
            return 0
        # The whole chunk is here: commit the header.
        stream.extended = extended
        stream.length, stream.kind, stream.stream = length, kind, msid
        if fmt == 0:
            stream.timestamp, stream.delta = ts_field, 0
        elif fmt < 3:
            stream.delta = ts_field
            stream.timestamp = (stream.timestamp + ts_field) & 0xFFFFFFFF
        elif new_message:
            stream.timestamp = (stream.timestamp + stream.delta) & 0xFFFFFFFF
        stream.partial += buf[pos : pos + need]
        pos += need
        if len(stream.partial) >= length:
            payload = bytes(stream.partial)
            stream.partial.clear()
            self._control(kind, payload)
            messages.append(Message(kind, msid, stream.timestamp, payload))
        return pos - start

    def _control(self, kind: int, payload: bytes) -> None:
        if kind == MessageType.SET_CHUNK_SIZE:
            if len(payload) < 4:
                raise PushError("the centre sent a truncated RTMP Set Chunk Size")
            size = _U32.unpack_from(payload)[0] & 0x7FFFFFFF
            if not 0 < size <= MAX_CHUNK_SIZE:
                raise PushError(f"the centre set an RTMP chunk size of {size}")
            self.chunk_size = size
        elif kind == MessageType.ABORT and len(payload) >= 4:
            aborted = self._streams.get(_U32.unpack_from(payload)[0])
            if aborted is not None:
                aborted.partial.clear()


def _basic_header(buf: bytearray, pos: int) -> tuple[int, int, int] | None:
    """Chunk type, chunk stream id and where the message header starts; None if incomplete."""
    if pos >= len(buf):
        return None
    fmt, csid = buf[pos] >> 6, buf[pos] & 0x3F
    pos += 1
    if csid < 2:
        width = csid + 1
        if pos + width > len(buf):
            return None
        csid = 64 + buf[pos] + (buf[pos + 1] << 8 if width == 2 else 0)
        pos += width
    return fmt, csid, pos
