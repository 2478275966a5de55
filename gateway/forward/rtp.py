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

__all__ = ["MAX_PAYLOAD", "RtpTrack", "clock_rate", "nal_units", "payload_type"]

MAX_PAYLOAD = 1400
"""Payload bytes per RTP packet: what RTSP servers expect even over TCP (FFmpeg uses 1472)."""

_STATIC_PAYLOAD_TYPES = {"pcm_mulaw": 0, "pcm_alaw": 8}
_H264_AUD = 9
_HEVC_AUD = 35
_NTP_EPOCH_OFFSET = 2_208_988_800


def clock_rate(codec: str, sample_rate: int) -> int:
    """RTP clock of a codec: 90 kHz for video, 48 kHz for Opus, the sample rate otherwise."""
    if codec in ("h264", "hevc", "mjpeg", "mpeg4"):
        return 90_000
    if codec == "opus":
        return 48_000
    return sample_rate or 8000


def payload_type(codec: str, sample_rate: int, channels: int, dynamic: int) -> int:
    """The static payload type for 8 kHz mono G.711, else ``dynamic``."""
    static = _STATIC_PAYLOAD_TYPES.get(codec)
    if static is not None and sample_rate == 8000 and channels in (0, 1):
        return static
    return dynamic


def nal_units(data: bytes) -> Iterator[bytes]:
    """The NAL units of an Annex B access unit, without start codes."""
    start = data.find(b"\x00\x00\x01")
    while start >= 0:
        begin = start + 3
        following = data.find(b"\x00\x00\x01", begin)
        end = len(data) if following < 0 else following
        nal = data[begin:end]
        if following >= 0:
            nal = nal.rstrip(b"\x00")  # the leading zero of the next 4-byte start code
        if nal:
            yield nal
        start = following


@dataclass(slots=True)
class RtpTrack:
    """Packetiser and counters of one track of one push session."""

    codec: str
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

    def packetize(self, data: bytes, timestamp: int) -> list[bytes]:
        """RTP packets (header included) carrying one access unit or audio frame."""
        if self.codec == "h264":
            payloads = list(_h264_payloads(data))
        elif self.codec == "hevc":
            payloads = list(_hevc_payloads(data))
        elif self.codec == "aac":
            payloads = [struct.pack("!HH", 16, len(data) << 3) + data]
        else:
            payloads = [data[i : i + MAX_PAYLOAD] for i in range(0, len(data), MAX_PAYLOAD)]
        out = []
        last = len(payloads) - 1
        for index, payload in enumerate(payloads):
            marker = 0x80 if index == last else 0
            header = struct.pack(
                "!BBHII",
                0x80,
                marker | self.payload_type,
                self.sequence,
                timestamp,
                self.ssrc,
            )
            self.sequence = (self.sequence + 1) & 0xFFFF
            self.packets += 1
            self.octets += len(payload)
            out.append(header + payload)
        self.last_timestamp = timestamp
        return out

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


def _h264_payloads(data: bytes) -> Iterator[bytes]:
    for nal in nal_units(data):
        kind = nal[0] & 0x1F
        if kind == _H264_AUD:
            continue
        if len(nal) <= MAX_PAYLOAD:
            yield nal
            continue
        indicator = (nal[0] & 0xE0) | 28  # FU-A
        chunk = MAX_PAYLOAD - 2
        body = nal[1:]
        for offset in range(0, len(body), chunk):
            flags = 0x80 if offset == 0 else 0
            if offset + chunk >= len(body):
                flags |= 0x40
            yield bytes((indicator, flags | kind)) + body[offset : offset + chunk]


def _hevc_payloads(data: bytes) -> Iterator[bytes]:
    for nal in nal_units(data):
        if len(nal) < 2:
            continue
        kind = (nal[0] >> 1) & 0x3F
        if kind == _HEVC_AUD:
            continue
        if len(nal) <= MAX_PAYLOAD:
            yield nal
            continue
        header = bytes(((nal[0] & 0x81) | (49 << 1), nal[1]))  # FU, same layer and tid
        chunk = MAX_PAYLOAD - 3
        body = nal[2:]
        for offset in range(0, len(body), chunk):
            flags = 0x80 if offset == 0 else 0
            if offset + chunk >= len(body):
                flags |= 0x40
            yield header + bytes((flags | kind,)) + body[offset : offset + chunk]
