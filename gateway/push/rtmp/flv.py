"""FLV bodies as RTMP carries them: AVC and AAC tag payloads, Annex B to length-prefixed.

RTMP messages of type 8 (audio), 9 (video) and 18 (data) carry exactly the body of an FLV tag.
Cameras give H.264 as Annex B (start codes, parameter sets in-band or in the extradata); FLV wants
an ``AVCDecoderConfigurationRecord`` once and then 4-byte length-prefixed NAL units.
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from gateway.media.bitstream import BitstreamError, h264
from gateway.media.bitstream.h264 import NalType, parameter_sets
from gateway.media.bitstream.nal import spans

__all__ = [
    "AAC_FRAME",
    "AvcFrame",
    "aac_sequence_header",
    "avc_config_record",
    "avc_decoder_config",
    "avc_frame",
    "avc_sequence_header",
]

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


# -- H.264 -------------------------------------------------------------------------------------

_DROPPED: Final = frozenset({int(NalType.SPS), int(NalType.PPS), int(NalType.AUD)})
"""Left out of each frame: the sequence header carries the parameter sets."""
_VCL: Final = h264.VCL
_IDR: Final = int(NalType.IDR)


def avc_decoder_config(extradata: bytes) -> bytes | None:
    """The ``AVCDecoderConfigurationRecord`` (ISO/IEC 14496-15) for Annex B parameter sets.

    ``extradata`` may be any Annex B buffer holding an SPS and a PPS (a camera's extradata or a
    keyframe); an ``avcC`` record is returned as it is. ``None`` when there is no SPS or PPS.
    Byte for byte what FFmpeg's ``ff_isom_write_avcc`` writes, including the chroma format and
    bit depth fields it adds for High profiles.
    """
    if extradata[:1] == b"\x01" and len(extradata) >= 7:
        return extradata
    return avc_config_record(*parameter_sets(extradata))


def avc_config_record(sps: list[bytes], pps: list[bytes], ext: list[bytes]) -> bytes | None:
    """The ``AVCDecoderConfigurationRecord`` of these SPS, PPS and SPS extension NAL units."""
    if not sps or not pps or len(sps[0]) < 4:
        return None
    first = sps[0]
    out = [bytes((1, first[1], first[2], first[3], 0xFF, 0xE0 | len(sps)))]
    out.extend(_U16.pack(len(nal)) + nal for nal in sps)
    out.append(bytes((len(pps),)))
    out.extend(_U16.pack(len(nal)) + nal for nal in pps)
    if first[1] not in (66, 77, 88):
        chroma, luma, chroma_depth = _sps_format(first)
        out.append(bytes((0xFC | chroma, 0xF8 | luma, 0xF8 | chroma_depth, len(ext))))
        out.extend(_U16.pack(len(nal)) + nal for nal in ext)
    return b"".join(out)


def _sps_format(sps: bytes) -> tuple[int, int, int]:
    """chroma_format_idc, bit_depth_luma_minus8, bit_depth_chroma_minus8 of an SPS NAL unit;
    4:2:0 and 8 bits when it cannot be read, so that a damaged SPS still gets a record."""
    try:
        return h264.sps_format(sps)
    except BitstreamError:
        return 1, 0, 0


def avc_sequence_header(config: bytes) -> bytes:
    """VIDEODATA: keyframe, AVC, AVCPacketType 0 (sequence header), composition time 0."""
    return b"\x17\x00\x00\x00\x00" + config


class AvcFrame(NamedTuple):
    """VIDEODATA for one access unit, as pieces to join (see :func:`avc_frame`)."""

    parts: list[bytes | memoryview]
    picture: bool
    """It holds a slice (not only parameter sets or SEI)."""
    keyframe: bool
    """Flagged as a keyframe by the source, or it holds an IDR slice."""


def avc_frame(annexb: bytes, keyframe: bool, composition_ms: int) -> AvcFrame:
    """VIDEODATA for one Annex B access unit: FLV header, then each NAL unit with its 4-byte
    length. Access unit delimiters and parameter sets are left out (the sequence header carries
    the parameter sets)."""
    parts: list[bytes | memoryview] = [b""]
    pack = _U32.pack
    view = memoryview(annexb)
    picture = idr = False
    for begin, end in spans(annexb):
        kind = annexb[begin] & 0x1F
        if kind in _DROPPED:
            continue
        if kind in _VCL:
            picture = True
            idr = idr or kind == _IDR
        parts.append(pack(end - begin))
        parts.append(view[begin:end])
    keyframe = keyframe or idr
    header = (0x17 if keyframe else 0x27, 1, *(composition_ms & 0xFFFFFF).to_bytes(3, "big"))
    parts[0] = bytes(header)
    return AvcFrame(parts, picture, keyframe)


# -- AAC ---------------------------------------------------------------------------------------

AAC_FRAME = b"\xaf\x01"
"""AUDIODATA header of a raw AAC frame: AAC, "44 kHz, 16-bit, stereo" (FLV's fixed values)."""


def aac_sequence_header(audio_specific_config: bytes) -> bytes:
    """AUDIODATA: AAC sequence header carrying the AudioSpecificConfig."""
    return b"\xaf\x00" + audio_specific_config
