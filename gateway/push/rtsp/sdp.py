"""SDP for an RTSP ANNOUNCE: one media section per track, with the decoder setup in fmtp."""

from __future__ import annotations

import base64
from typing import Final

from gateway.media.bitstream import h264, h265
from gateway.media.codec import Codec
from gateway.media.packet import Track
from gateway.push.rtsp.rtp import clock_rate

__all__ = ["RTSP_CODECS", "describe"]

RTSP_CODECS: Final[frozenset[Codec]] = frozenset(
    {"h264", "hevc", "aac", "pcm_alaw", "pcm_mulaw", "opus"}
)
_ENCODING: Final[dict[Codec, str]] = {
    "h264": "H264",
    "hevc": "H265",
    "aac": "MPEG4-GENERIC",
    "pcm_alaw": "PCMA",
    "pcm_mulaw": "PCMU",
    "opus": "opus",
}


_HEVC_SPROP: Final = {
    h265.NalType.VPS: "sprop-vps",
    h265.NalType.SPS: "sprop-sps",
    h265.NalType.PPS: "sprop-pps",
}
"""RFC 7798 7.1: the first of each parameter set, in this order."""


def describe(tracks: list[tuple[Track, int]], *, host: str) -> str:
    """SDP text for ``(track, payload type)`` pairs; controls are ``streamid=<n>``."""
    lines = [
        "v=0",
        "o=- 0 0 IN IP4 127.0.0.1",
        "s=camera-gateway",
        # 0.0.0.0 in an SDP c= line means "no address" (RFC 4566); nothing binds to it.
        f"c=IN IP4 {host if host.replace('.', '').isdigit() else '0.0.0.0'}",  # noqa: S104
        "t=0 0",
        "a=tool:camera-gateway",
    ]
    for index, (track, pt) in enumerate(tracks):
        media = "video" if track.kind == "video" else "audio"
        lines.append(f"m={media} 0 RTP/AVP {pt}")
        lines.append(f"a=rtpmap:{pt} {_rtpmap(track)}")
        fmtp = _fmtp(track)
        if fmtp:
            lines.append(f"a=fmtp:{pt} {fmtp}")
        lines.append(f"a=control:streamid={index}")
    return "\r\n".join(lines) + "\r\n"


def _rtpmap(track: Track) -> str:
    rate = clock_rate(track.codec, track.sample_rate)
    name = _ENCODING[track.codec]
    if track.kind == "video":
        return f"{name}/{rate}"
    channels = 2 if track.codec == "opus" else max(1, track.channels)
    return f"{name}/{rate}/{channels}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _fmtp(track: Track) -> str:
    extradata = track.extradata or b""
    if track.codec == "h264":
        sps, pps, _ = h264.parameter_sets(extradata)
        parts = ["packetization-mode=1"]
        if sps and pps:
            parts.append(f"sprop-parameter-sets={_b64(sps[0])},{_b64(pps[0])}")
            parts.append(f"profile-level-id={sps[0][1:4].hex().upper()}")
        return "; ".join(parts)
    if track.codec == "hevc":
        found = h265.parameter_sets(extradata)
        return "; ".join(
            f"{name}={_b64(found[kind][0])}" for kind, name in _HEVC_SPROP.items() if found[kind]
        )
    if track.codec == "aac":
        parts = [
            "profile-level-id=1",
            "mode=AAC-hbr",
            "sizelength=13",
            "indexlength=3",
            "indexdeltalength=3",
        ]
        if extradata:
            parts.append(f"config={extradata.hex()}")
        return ";".join(parts)
    return ""
