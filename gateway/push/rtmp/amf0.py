"""AMF0, the encoding of RTMP commands and metadata: encode, and a bounded decode that rejects
anything malformed (truncated values, unknown markers, too deep, counts beyond the data)."""

from __future__ import annotations

import struct
from typing import TypeAlias

__all__ = ["AmfError", "AmfValue", "EcmaArray", "decode", "encode"]

AmfValue: TypeAlias = "float | bool | str | dict[str, AmfValue] | list[AmfValue] | None"

MAX_DEPTH = 32
"""Objects within objects: a command from a server is two or three deep."""


class EcmaArray(dict[str, AmfValue]):
    """An AMF0 ECMA array (what ``onMetaData`` carries); a plain dict encodes as an object."""


class AmfError(ValueError):
    """Bytes that are not well-formed AMF0; the message says what is wrong."""


_NUMBER = struct.Struct(">Bd")
_DOUBLE = struct.Struct(">d")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_OBJECT_END = b"\x00\x00\x09"


def encode(*values: AmfValue) -> bytes:
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


def decode(data: bytes) -> list[AmfValue]:
    """The AMF0 values in ``data``; :class:`AmfError` if any of it is malformed."""
    values: list[AmfValue] = []
    pos = 0
    while pos < len(data):
        value, pos = _decode(data, pos, 0)
        values.append(value)
    return values


def _need(data: bytes, pos: int, size: int, what: str) -> None:
    if pos + size > len(data):
        raise AmfError(f"truncated AMF0 {what}")


def _decode(data: bytes, pos: int, depth: int) -> tuple[AmfValue, int]:
    _need(data, pos, 1, "value")
    marker = data[pos]
    pos += 1
    if marker == 0x00:
        _need(data, pos, 8, "number")
        return _DOUBLE.unpack_from(data, pos)[0], pos + 8
    if marker == 0x01:
        _need(data, pos, 1, "boolean")
        return data[pos] != 0, pos + 1
    if marker == 0x02:
        return _string(data, pos, 2)
    if marker in (0x0C, 0x0F):  # long string, XML document
        return _string(data, pos, 4)
    if marker in (0x05, 0x06):  # null, undefined
        return None, pos
    if marker in (0x03, 0x08, 0x0A):
        if depth >= MAX_DEPTH:
            raise AmfError(f"AMF0 nested more than {MAX_DEPTH} deep")
        if marker == 0x0A:
            return _strict_array(data, pos, depth)
        if marker == 0x08:
            _need(data, pos, 4, "ECMA array")
            pos += 4  # approximate count; the end marker is what counts
        result: dict[str, AmfValue] = EcmaArray() if marker == 0x08 else {}
        while data[pos : pos + 3] != _OBJECT_END:
            key, pos = _string(data, pos, 2)
            result[key], pos = _decode(data, pos, depth + 1)
        return result, pos + 3
    if marker == 0x0B:  # date: milliseconds, then a time zone nobody uses
        _need(data, pos, 10, "date")
        return _DOUBLE.unpack_from(data, pos)[0], pos + 10
    raise AmfError(f"unknown AMF0 marker {marker:#04x}")


def _strict_array(data: bytes, pos: int, depth: int) -> tuple[list[AmfValue], int]:
    _need(data, pos, 4, "array")
    (count,) = _U32.unpack_from(data, pos)
    pos += 4
    if count > len(data) - pos:  # each item takes at least one byte
        raise AmfError(f"AMF0 array of {count} items in {len(data) - pos} bytes")
    items: list[AmfValue] = []
    for _ in range(count):
        item, pos = _decode(data, pos, depth + 1)
        items.append(item)
    return items, pos


def _string(data: bytes, pos: int, width: int) -> tuple[str, int]:
    _need(data, pos, width, "string")
    size = int.from_bytes(data[pos : pos + width], "big")
    end = pos + width + size
    _need(data, pos + width, size, "string")
    try:
        return data[pos + width : end].decode(), end
    except UnicodeDecodeError:
        raise AmfError("AMF0 string not UTF-8") from None
