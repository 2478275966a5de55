"""In-band parameter sets: a keyframe that carries its SPS/PPS (and VPS) decodes on its own.

Cameras often send parameter sets only in the SDP. A receiver that joins a push, or a player
that seeks, then needs them in the stream: :func:`with_parameter_sets` puts the Annex B
extradata in front of a keyframe that lacks them.
"""

from __future__ import annotations

from gateway.media.bitstream import h264, h265
from gateway.media.bitstream.nal import is_annexb
from gateway.media.codec import Codec

__all__ = ["with_parameter_sets"]


def with_parameter_sets(data: bytes, extradata: bytes | None, codec: Codec) -> bytes:
    """``data`` (an Annex B keyframe) with ``extradata`` in front if it carries no SPS before
    its first slice (where an access unit carries it; the slice data is not searched).

    Returned unchanged for other codecs, or when the extradata is not Annex B (avcC/hvcC).
    """
    if codec not in ("h264", "hevc") or not extradata or not is_annexb(extradata):
        return data
    if codec == "h264":
        carried = h264.parameter_sets(data)[0]
    else:
        carried = h265.parameter_sets(data)[h265.NalType.SPS]
    return data if carried else extradata + data
