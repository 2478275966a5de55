"""Identity of an H.264 picture across stream copy: the sha1 of its first slice.

Stream copy never changes slice bytes. A picture's first slice (``first_mb_in_slice`` = 0, the
first bit after the NAL header) identifies it even where a depayloader or muxer splits the
picture in two: only the part holding the first slice carries the identity.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def first_slice_digest(nals: Iterable[bytes]) -> str:
    """sha1 of the first slice of a picture among its NAL units; '' if none is there."""
    for nal in nals:
        if len(nal) > 1 and nal[0] & 0x1F in (1, 5) and nal[1] & 0x80:
            return hashlib.sha1(nal, usedforsecurity=False).hexdigest()
    return ""


def annexb_nals(data: bytes) -> list[bytes]:
    nals = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        j = data.find(b"\x00\x00\x01", i + 3)
        nals.append(data[i + 3 : j if j >= 0 else len(data)].rstrip(b"\x00"))
        i = j
    return nals


def avcc_nals(data: bytes) -> list[bytes]:
    """The NAL units of a length-prefixed (MP4, "avc") access unit."""
    nals = []
    pos = 0
    while pos + 4 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        nals.append(data[pos + 4 : pos + 4 + size])
        pos += 4 + size
    return nals


def slice_digest(data: bytes) -> str:
    """The picture identity of an Annex B access unit ('' if it holds no first slice)."""
    return first_slice_digest(annexb_nals(data))


def avcc_digest(data: bytes) -> str:
    """The picture identity of a length-prefixed (MP4) access unit."""
    return first_slice_digest(avcc_nals(data))
