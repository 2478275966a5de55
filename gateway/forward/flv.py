"""FLV bodies as RTMP carries them: AMF0 values, AVC and AAC tag payloads, Annex B conversion.

RTMP messages of type 8 (audio), 9 (video) and 18 (data) carry exactly the body of an FLV tag.
Cameras give H.264 as Annex B (start codes, parameter sets in-band or in the extradata); FLV wants
an ``AVCDecoderConfigurationRecord`` once and then 4-byte length-prefixed NAL units.
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple, TypeAlias

from gateway.media.bitstream import BitstreamError, h264
from gateway.media.bitstream.h264 import NalType, parameter_sets
from gateway.media.bitstream.nal import spans

__all__ = [
    "AAC_FRAME",
    "AmfValue",
    "AvcFrame",
    "EcmaArray",
    "aac_sequence_header",
    "amf_decode",
    "amf_encode",
    "avc_config_record",
    "avc_decoder_config",
    "avc_frame",
    "avc_sequence_header",
]

AmfValue: TypeAlias = "float | bool | str | dict[str, AmfValue] | list[AmfValue] | None"


class EcmaArray(dict[str, AmfValue]):
    """An AMF0 ECMA array (what ``onMetaData`` carries); a plain dict encodes as an object."""


_NUMBER = struct.Struct(">Bd")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_OBJECT_END = b"\x00\x00\x09"


def amf_encode(*values: AmfValue) -> bytes:
    """AMF0 encoding of ``values``, one after the other (a command: name, transaction, ...)."""
    out: list[bytes] = []
    for value in values:
        _encode(value, out)
    return b"".join(out)


def _encode(value: AmfValue, out: list[bytes]) -> None:
    if value is None:
        out.append(b"\x05")
    elif isinstance(value, bool):
        out.append(b"\x01\x01" if value else b"\x01\x00")
    elif isinstance(value, int | float):
        out.append(_NUMBER.pack(0, float(value)))
    elif isinstance(value, str):
        raw = value.encode()
        if len(raw) > 0xFFFF:
            out.append(b"\x0c" + _U32.pack(len(raw)) + raw)
        else:
            out.append(b"\x02" + _U16.pack(len(raw)) + raw)
    elif isinstance(value, dict):
        if isinstance(value, EcmaArray):
            out.append(b"\x08" + _U32.pack(len(value)))
        else:
            out.append(b"\x03")
        for key, item in value.items():
            name = key.encode()
            out.append(_U16.pack(len(name)) + name)
            _encode(item, out)
        out.append(_OBJECT_END)
    else:
        out.append(b"\x0a" + _U32.pack(len(value)))
        for item in value:
            _encode(item, out)


def amf_decode(data: bytes) -> list[AmfValue]:
    """The AMF0 values in ``data``; stops (keeping what came before) at anything malformed."""
    values: list[AmfValue] = []
    pos = 0
    try:
        while pos < len(data):
            value, pos = _decode(data, pos)
            values.append(value)
    except (IndexError, ValueError, struct.error, UnicodeDecodeError):
        pass
    return values


def _decode(data: bytes, pos: int) -> tuple[AmfValue, int]:
    marker = data[pos]
    pos += 1
    if marker == 0x00:
        return struct.unpack_from(">d", data, pos)[0], pos + 8
    if marker == 0x01:
        return data[pos] != 0, pos + 1
    if marker == 0x02:
        return _string(data, pos, 2)
    if marker in (0x0C, 0x0F):  # long string, XML document
        return _string(data, pos, 4)
    if marker in (0x05, 0x06):  # null, undefined
        return None, pos
    if marker in (0x03, 0x08):
        if marker == 0x08:
            pos += 4  # approximate count; the end marker is what counts
        result: dict[str, AmfValue] = EcmaArray() if marker == 0x08 else {}
        while data[pos : pos + 3] != _OBJECT_END:
            key, pos = _string(data, pos, 2)
            result[key], pos = _decode(data, pos)
        return result, pos + 3
    if marker == 0x0A:
        (count,) = _U32.unpack_from(data, pos)
        pos += 4
        items: list[AmfValue] = []
        for _ in range(count):
            item, pos = _decode(data, pos)
            items.append(item)
        return items, pos
    if marker == 0x0B:  # date: milliseconds, then a time zone nobody uses
        return struct.unpack_from(">d", data, pos)[0], pos + 10
    raise ValueError(f"unsupported AMF0 marker {marker:#x}")


def _string(data: bytes, pos: int, width: int) -> tuple[str, int]:
    size = int.from_bytes(data[pos : pos + width], "big")
    end = pos + width + size
    if end > len(data):
        raise ValueError("truncated AMF0 string")
    return data[pos + width : end].decode(), end


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
