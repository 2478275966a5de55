"""RTP packetisation for stream copy: H.264 (RFC 6184), H.265 (RFC 7798), AAC (RFC 3640),
G.711 and Opus, plus RTCP sender reports.

Each :class:`RtpTrack` turns one access unit into the RTP packets that carry it, with sequence
numbers, a random SSRC and timestamp origin, and the marker bit on the last packet of a picture.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from gateway.media.bitstream import h264, h265
from gateway.media.bitstream.nal import spans
from gateway.media.codec import Codec

__all__ = ["MAX_PAYLOAD", "RtpTrack", "clock_rate", "payload_type"]

MAX_PAYLOAD = 1400
"""Payload bytes per RTP packet: what RTSP servers expect even over TCP (FFmpeg uses 1472)."""

_STATIC_PAYLOAD_TYPES: dict[Codec, int] = {"pcm_mulaw": 0, "pcm_alaw": 8}
_H264_AUD: Final = int(h264.NalType.AUD)
_H264_FU_A: Final = int(h264.NalType.FU_A)
_HEVC_AUD: Final = int(h265.NalType.AUD)
_HEVC_FU: Final = int(h265.NalType.FU)
"""Plain ints: compared for every NAL unit sent."""
_NTP_EPOCH_OFFSET = 2_208_988_800


def clock_rate(codec: Codec, sample_rate: int) -> int:
    """RTP clock of a codec: 90 kHz for video, 48 kHz for Opus, the sample rate otherwise."""
    if codec in ("h264", "hevc", "mjpeg", "mpeg4"):
        return 90_000
    if codec == "opus":
        return 48_000
    return sample_rate or 8000


def payload_type(codec: Codec, sample_rate: int, channels: int, dynamic: int) -> int:
    """The static payload type for 8 kHz mono G.711, else ``dynamic``."""
    static = _STATIC_PAYLOAD_TYPES.get(codec)
    if static is not None and sample_rate == 8000 and channels in (0, 1):
        return static
    return dynamic


_INTERLEAVED = struct.Struct("!cBHBBHII")
"""RTSP interleaved frame header ($, channel, length) followed by the RTP header."""
_Chunk = tuple[bytes, memoryview]
"""One RTP payload: a payload header (FU indicator and header, AU header) and a slice of data."""


@dataclass(slots=True)
class RtpTrack:
    """Packetiser and counters of one track of one push session."""

    codec: Codec
    payload_type: int
    clock: int
    ssrc: int = field(default_factory=lambda: struct.unpack("!I", os.urandom(4))[0])
    sequence: int = field(default_factory=lambda: struct.unpack("!H", os.urandom(2))[0])
    origin: int = field(default_factory=lambda: struct.unpack("!I", os.urandom(4))[0])
    packets: int = 0
    octets: int = 0
    last_timestamp: int = 0

    def timestamp(self, seconds: float) -> int:
        """RTP timestamp of an instant given in seconds since the session's start."""
        return (self.origin + round(seconds * self.clock)) & 0xFFFFFFFF

    def _chunks(self, data: bytes) -> list[_Chunk]:
        view = memoryview(data)
        if self.codec == "h264":
            return list(_h264_chunks(data, view))
        if self.codec == "hevc":
            return list(_hevc_chunks(data, view))
        if self.codec == "aac":
            return [(struct.pack("!HH", 16, len(data) << 3), view)]
        return [(b"", view[i : i + MAX_PAYLOAD]) for i in range(0, len(data), MAX_PAYLOAD)]

    def _next_header(self, last: bool, timestamp: int) -> tuple[int, int, int, int, int]:
        fields = (
            0x80,
            (0x80 if last else 0) | self.payload_type,
            self.sequence,
            timestamp,
            self.ssrc,
        )
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.packets += 1
        return fields

    def interleaved(self, data: bytes, timestamp: int, channel: int) -> bytearray:
        """RTP packets (header included) carrying one access unit or audio frame, framed for
        RTSP over TCP (``$``, channel, length), built with one copy of the data."""
        chunks = self._chunks(data)
        last = len(chunks) - 1
        out = bytearray()
        for index, (prefix, body) in enumerate(chunks):
            size = len(prefix) + len(body)
            self.octets += size
            out += _INTERLEAVED.pack(
                b"$", channel, 12 + size, *self._next_header(index == last, timestamp)
            )
            out += prefix
            out += body
        self.last_timestamp = timestamp
        return out

    def packetize(self, data: bytes, timestamp: int) -> list[bytes]:
        """The same RTP packets, unframed."""
        frames = self.interleaved(data, timestamp, 0)
        packets = []
        pos = 0
        while pos < len(frames):
            size = int.from_bytes(frames[pos + 2 : pos + 4])
            packets.append(bytes(frames[pos + 4 : pos + 4 + size]))
            pos += 4 + size
        return packets

    def sender_report(self, wall_time: float, timestamp: int) -> bytes:
        """RTCP SR tying ``timestamp`` to ``wall_time`` (UNIX seconds), for receiver sync."""
        ntp = wall_time + _NTP_EPOCH_OFFSET
        seconds = int(ntp)
        fraction = int((ntp - seconds) * (1 << 32)) & 0xFFFFFFFF
        return struct.pack(
            "!BBHIIIIII",
            0x80,
            200,
            6,
            self.ssrc,
            seconds & 0xFFFFFFFF,
            fraction,
            timestamp,
            self.packets & 0xFFFFFFFF,
            self.octets & 0xFFFFFFFF,
        )


def _h264_chunks(data: bytes, view: memoryview) -> Iterator[_Chunk]:
    for begin, end in spans(data):
        header = data[begin]
        kind = header & 0x1F
        if kind == _H264_AUD:
            continue
        if end - begin <= MAX_PAYLOAD:
            yield b"", view[begin:end]
            continue
        indicator = (header & 0xE0) | _H264_FU_A
        step = MAX_PAYLOAD - 2
        for offset in range(begin + 1, end, step):
            flags = 0x80 if offset == begin + 1 else 0
            if offset + step >= end:
                flags |= 0x40
            yield bytes((indicator, flags | kind)), view[offset : min(offset + step, end)]


def _hevc_chunks(data: bytes, view: memoryview) -> Iterator[_Chunk]:
    for begin, end in spans(data):
        if end - begin < 2:
            continue
        kind = (data[begin] >> 1) & 0x3F
        if kind == _HEVC_AUD:
            continue
        if end - begin <= MAX_PAYLOAD:
            yield b"", view[begin:end]
            continue
        header = bytes(((data[begin] & 0x81) | (_HEVC_FU << 1), data[begin + 1]))  # same layer, tid
        step = MAX_PAYLOAD - 3
        for offset in range(begin + 2, end, step):
            flags = 0x80 if offset == begin + 2 else 0
            if offset + step >= end:
                flags |= 0x40
            yield header + bytes((flags | kind,)), view[offset : min(offset + step, end)]
