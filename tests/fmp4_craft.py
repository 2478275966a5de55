"""Real fragmented MP4 files from Debian's ffmpeg, and damage crafted into them byte by byte.

The box reading here is independent of ``gateway.media.fmp4``: it only has to find boxes in
the well-formed files ffmpeg writes, before the damage.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

FFMPEG_FPS = 25


def ffmpeg_segment(
    path: Path,
    *,
    seconds: float = 3.0,
    audio: bool = False,
    movflags: str = "empty_moov+default_base_moof",
    gop: int = 25,
) -> Path:
    """A test pattern (320x240, 25 fps, a keyframe every ``gop`` frames) cut in 0.5 s
    fragments, as our recorder writes them."""
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"]
    if audio:
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    cmd += ["-t", str(seconds), "-c:v", "libx264", "-g", str(gop), "-pix_fmt", "yuv420p"]
    if audio:
        cmd += ["-c:a", "aac"]
    cmd += ["-movflags", movflags, "-frag_duration", "500000", "-f", "mp4", str(path)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    return path


def boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """(type, start, end) of the boxes that tile ``data[start:end]``."""
    end = len(data) if end is None else end
    found = []
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        assert size >= header, f"bad box at {pos}"
        found.append((kind, pos, pos + size))
        pos += size
    return found


def child(data: bytes, box: tuple[bytes, int, int], kind: bytes) -> list[tuple[bytes, int, int]]:
    """Children of ``box`` (whose payload starts 8 bytes in) of type ``kind``."""
    return [b for b in boxes(data, box[1] + 8, box[2]) if b[0] == kind]


def fragments(data: bytes) -> list[tuple[int, int]]:
    """(moof start, mdat end) of every fragment."""
    top = boxes(data)
    return [
        (box[1], top[i + 1][2])
        for i, box in enumerate(top)
        if box[0] == b"moof" and i + 1 < len(top) and top[i + 1][0] == b"mdat"
    ]


def video_truns(data: bytes, track_id: int = 1) -> list[int]:
    """Start of the video ``trun`` box of each fragment."""
    found = []
    for moof in (b for b in boxes(data) if b[0] == b"moof"):
        for traf in child(data, moof, b"traf"):
            tfhd = child(data, traf, b"tfhd")[0]
            if struct.unpack_from(">I", data, tfhd[1] + 12)[0] == track_id:
                found.append(child(data, traf, b"trun")[0][1])
    return found


def with_empty_tkhd(data: bytes) -> bytes:
    """The same file, its first ``tkhd`` emptied (the rest of the box becomes a ``free``)."""
    moov = next(b for b in boxes(data) if b[0] == b"moov")
    trak = child(data, moov, b"trak")[0]
    tkhd = child(data, trak, b"tkhd")[0]
    out = bytearray(data)
    rest = tkhd[2] - tkhd[1] - 8
    filler = struct.pack(">I4s", rest, b"free") + bytes(rest - 8)
    out[tkhd[1] : tkhd[2]] = struct.pack(">I4s", 8, b"tkhd") + filler
    assert len(out) == len(data)
    return bytes(out)


def forty_byte_empty_tkhd() -> bytes:
    """40 bytes: a movie header whose one track has an empty ``tkhd``."""
    tkhd = struct.pack(">I4s", 8, b"tkhd")
    free = struct.pack(">I4s", 16, b"free") + bytes(8)
    trak = struct.pack(">I4s", 8 + len(tkhd) + len(free), b"trak") + tkhd + free
    data = struct.pack(">I4s", 8 + len(trak), b"moov") + trak
    assert len(data) == 40
    return data


def with_giant_trun(data: bytes, count: int, *, per_sample: bool = False) -> bytes:
    """The first video run claims ``count`` samples. Without ``per_sample``, its per-sample
    fields are dropped from its flags too (what is left of the box is not read)."""
    out = bytearray(data)
    trun = video_truns(data)[0]
    flags = struct.unpack_from(">I", data, trun + 8)[0]
    if not per_sample:
        struct.pack_into(">I", out, trun + 8, flags & ~0xF00)
    struct.pack_into(">I", out, trun + 12, count)
    return bytes(out)


def damaged(data: bytes, start: int, length: int = 24, fill: int = 0xFF) -> bytes:
    out = bytearray(data)
    out[start : start + length] = bytes([fill]) * length
    return bytes(out)


def ffprobe_packets(path: Path) -> list[int]:
    """Packets per stream, counted by ffprobe."""
    result = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_packets",
            "-show_entries",
            "stream=nb_read_packets",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [int(line) for line in result.stdout.split()]
