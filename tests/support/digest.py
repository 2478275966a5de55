"""Identity of an H.264 access unit across stream copy: the sha1 of its slice NAL units."""

from __future__ import annotations

import hashlib


def slice_digest(data: bytes) -> str:
    """sha1 of the VCL NAL units of an Annex B access unit (what stream copy never changes)."""
    digest = hashlib.sha1()
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        j = data.find(b"\x00\x00\x01", i + 3)
        nal = data[i + 3 : j if j >= 0 else len(data)].rstrip(b"\x00")
        if nal and nal[0] & 0x1F in (1, 5):
            digest.update(nal)
        i = j
    return digest.hexdigest()
