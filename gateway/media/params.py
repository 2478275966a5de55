"""In-band parameter sets: a keyframe that carries its SPS/PPS (and VPS) decodes on its own.

Cameras often send parameter sets only in the SDP. A receiver that joins a push, or a player
that seeks, then needs them in the stream: :func:`with_parameter_sets` puts the Annex B
extradata in front of a keyframe that lacks them.
"""

from __future__ import annotations

__all__ = ["with_parameter_sets"]

_H264_SPS = 7
_HEVC_SPS = 33


def _nal_types(data: bytes, codec: str) -> set[int]:
    types: set[int] = set()
    i = data.find(b"\x00\x00\x01")
    while i >= 0 and i + 3 < len(data):
        header = data[i + 3]
        types.add(header & 0x1F if codec == "h264" else (header >> 1) & 0x3F)
        i = data.find(b"\x00\x00\x01", i + 3)
    return types


def with_parameter_sets(data: bytes, extradata: bytes | None, codec: str) -> bytes:
    """``data`` (an Annex B keyframe) with ``extradata`` in front if it carries no SPS.

    Returned unchanged for other codecs, or when the extradata is not Annex B (avcC/hvcC).
    """
    if codec not in ("h264", "hevc") or not extradata:
        return data
    if not (extradata.startswith(b"\x00\x00\x01") or extradata.startswith(b"\x00\x00\x00\x01")):
        return data
    sps = _H264_SPS if codec == "h264" else _HEVC_SPS
    if sps in _nal_types(data, codec):
        return data
    return extradata + data
