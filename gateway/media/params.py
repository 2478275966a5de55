"""In-band parameter sets: a keyframe that carries its SPS/PPS (and VPS) decodes on its own.

Cameras often send parameter sets only in the SDP. A receiver that joins a push, or a player
that seeks, then needs them in the stream: :func:`with_parameter_sets` puts the Annex B
extradata in front of a keyframe that lacks them.
"""

from __future__ import annotations

from gateway.media.bitstream import h264, h265
from gateway.media.bitstream.nal import headers, is_annexb
from gateway.media.codec import Codec

__all__ = ["with_parameter_sets"]


def _has_sps(data: bytes, codec: Codec) -> bool:
    """Whether an SPS comes before the first slice (where an access unit carries it): the slice
    data, the bulk of a keyframe, is not searched."""
    for at in headers(data):
        if codec == "h264":
            kind = data[at] & 0x1F
            if kind == h264.NalType.SPS:
                return True
            if kind in h264.VCL:
                return False
        else:
            kind = (data[at] >> 1) & 0x3F
            if kind == h265.NalType.SPS:
                return True
            if kind < h265.VCL_END:
                return False
    return False


def with_parameter_sets(data: bytes, extradata: bytes | None, codec: Codec) -> bytes:
    """``data`` (an Annex B keyframe) with ``extradata`` in front if it carries no SPS.

    Returned unchanged for other codecs, or when the extradata is not Annex B (avcC/hvcC).
    """
    if codec not in ("h264", "hevc") or not extradata or not is_annexb(extradata):
        return data
    if _has_sps(data, codec):
        return data
    return extradata + data
