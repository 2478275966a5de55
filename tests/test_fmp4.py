"""Fragmented MP4 segments on real files: facts without decoding, and crash repair."""

from __future__ import annotations

import shutil
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import decode_errors, ffprobe

from gateway.media.normalize import Normalizer
from gateway.recorder.fmp4 import Fmp4Error, repair, scan
from gateway.recorder.segment import FRAGMENT_SECONDS, SegmentInfo, SegmentWriter
from gateway.source.sim import SimSource
from gateway.storage.naming import segment_path

pytestmark = pytest.mark.skipif(shutil.which("ffprobe") is None, reason="needs ffprobe")

FPS = 25
SIM_URL = f"sim://t?fps={FPS}&gop=1&width=320&height=240"
CLIP_SECONDS = 3.0


@dataclass(frozen=True)
class Recording:
    finished: Path
    info: SegmentInfo
    killed: Path
    """Copy of the ``.part`` file taken while the writer was still open (a process kill)."""
    written_at_kill: float
    """Seconds of media handed to the writer when the copy was taken."""
    frames_at_kill: int


def top_level_boxes(path: Path) -> list[tuple[bytes, int, int]]:
    """(type, start, end) of the top-level boxes, read independently of the module under test."""
    data = path.read_bytes()
    boxes = []
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, pos + 8)
        assert size >= 8, f"bad box at {pos}"
        boxes.append((kind, pos, pos + size))
        pos += size
    assert pos == len(data), "file does not end on a box boundary"
    return boxes


def video_stream(path: Path) -> dict[str, Any]:
    streams = [s for s in ffprobe(path)["streams"] if s["codec_type"] == "video"]
    assert len(streams) == 1
    return dict(streams[0])


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    """A real ~3 s sim clip: SimSource -> Normalizer -> SegmentWriter, as the recorder does."""
    root = tmp_path_factory.mktemp("fmp4")
    source = SimSource(SIM_URL, camera_id="cam1")
    tracks = source.open()
    try:
        normalizer = Normalizer(tracks, camera_id="cam1")
        start = time.time()
        path = segment_path(root, "cam1", start)
        writer = SegmentWriter(path, tracks, camera_id="cam1", start=start)
        assert path.name.endswith(".mp4.part")
        began = time.monotonic()
        while time.monotonic() - began < CLIP_SECONDS:
            for packet in filter(None, [normalizer.push(source.read())]):
                writer.write(packet)
        # The process "dies" here: whatever reached the file so far is all that survives.
        killed = root / "killed.mp4.part"
        shutil.copyfile(path, killed)
        written_at_kill, frames_at_kill = writer.duration, writer.frames
        info = writer.close()
    finally:
        source.close()
    assert not path.exists()
    assert info.path.exists() and info.path.name.endswith(".mp4")
    return Recording(info.path, info, killed, written_at_kill, frames_at_kill)


def test_scan_of_finished_segment_matches_ffprobe(recording: Recording) -> None:
    facts = scan(recording.finished)
    stream = video_stream(recording.finished)
    frame = 1 / FPS

    assert facts.frames == int(stream["nb_read_packets"])
    assert facts.frames == recording.info.frames
    assert abs(facts.duration - float(stream["duration"])) <= frame
    assert abs(facts.duration - CLIP_SECONDS) <= 3 * frame
    assert facts.codec == "h264"
    assert facts.video is not None
    assert (facts.video.width, facts.video.height) == (320, 240)
    assert not facts.has_audio
    assert facts.size == facts.complete_size == recording.finished.stat().st_size
    assert facts.fragments >= round(CLIP_SECONDS / FRAGMENT_SECONDS) - 1
    assert decode_errors(recording.finished) == ""


def test_scan_refuses_files_that_are_not_segments(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not an mp4 file at all" * 100)

    for path in (empty, garbage):
        with pytest.raises(Fmp4Error):
            scan(path)
        with pytest.raises(Fmp4Error):
            repair(path)


def truncation_offsets(path: Path) -> list[int]:
    size = path.stat().st_size
    boxes = top_level_boxes(path)
    moov = next((start, end) for kind, start, end in boxes if kind == b"moov")
    offsets = {round(size * i * 0.07) for i in range(1, 15)}
    offsets |= {1, 7, 8, moov[0] + 10, (moov[0] + moov[1]) // 2, moov[1] - 1, moov[1]}
    offsets |= {moov[1] + 1, moov[1] + 9, moov[1] + 100}
    for _kind, start, end in boxes:  # every box edge, and just either side of it
        offsets |= {start + 1, end - 1, end}
    return sorted(o for o in offsets if 0 < o < size)


def test_truncated_copies_are_refused_or_repaired_to_playable_files(
    recording: Recording, tmp_path: Path
) -> None:
    source = recording.finished
    data = source.read_bytes()
    boxes = top_level_boxes(source)
    fragment_ends = [end for kind, _start, end in boxes if kind == b"mdat"]
    repaired_count = refused_count = 0
    checked: dict[int, int] = {}

    for offset in truncation_offsets(source):
        cut = tmp_path / f"cut-{offset}.mp4"
        cut.write_bytes(data[:offset])
        try:
            facts = repair(cut)
        except Fmp4Error:
            # Refused only when nothing playable is in it: cut before the end of the first fragment.
            assert offset < fragment_ends[0], f"cut at {offset}: refused a playable file"
            refused_count += 1
            continue
        repaired_count += 1
        kept = [end for end in fragment_ends if end <= offset]
        assert kept, f"cut at {offset}: repaired a file without a complete fragment"
        assert cut.stat().st_size == kept[-1] == facts.size, f"cut at {offset}"
        assert facts.fragments == len(kept)
        assert scan(cut).frames == facts.frames
        if facts.size not in checked:  # the same size is the same bytes: probe it once
            assert facts.frames == int(video_stream(cut)["nb_read_packets"])
            assert decode_errors(cut) == "", f"cut at {offset}"
            checked[facts.size] = facts.frames
        assert checked[facts.size] == facts.frames
        cut.unlink()

    assert repaired_count > 10
    assert refused_count > 3
    assert len(checked) == len(fragment_ends)  # every fragment count was probed


@pytest.mark.parametrize("extra", [0, 1, 8, 200])
def test_file_cut_after_n_fragments_keeps_exactly_those(
    recording: Recording, tmp_path: Path, extra: int
) -> None:
    boxes = top_level_boxes(recording.finished)
    fragment_ends = [end for kind, _start, end in boxes if kind == b"mdat"]
    complete = scan(recording.finished)
    n = 3
    assert len(fragment_ends) > n
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(recording.finished.read_bytes()[: fragment_ends[n - 1] + extra])

    facts = repair(cut)

    assert facts.fragments == n
    assert cut.stat().st_size == fragment_ends[n - 1]
    assert 0 < facts.frames < complete.frames
    assert facts.frames == int(video_stream(cut)["nb_read_packets"])
    # Fragments are cut every FRAGMENT_SECONDS: n of them hold about n times that.
    assert abs(facts.duration - n * FRAGMENT_SECONDS) <= 2 / FPS
    assert decode_errors(cut) == ""


def test_killed_writer_loses_at_most_one_fragment(recording: Recording, tmp_path: Path) -> None:
    killed = tmp_path / recording.killed.name
    shutil.copyfile(recording.killed, killed)

    facts = repair(killed)

    lost = recording.written_at_kill - facts.duration
    assert 0 <= lost <= FRAGMENT_SECONDS + 1 / FPS + 1e-6
    assert recording.frames_at_kill - facts.frames <= round(FRAGMENT_SECONDS * FPS) + 1
    assert facts.frames == int(video_stream(killed)["nb_read_packets"])
    assert decode_errors(killed) == ""


def test_repair_leaves_a_complete_file_untouched(recording: Recording, tmp_path: Path) -> None:
    copy = tmp_path / "copy.mp4"
    shutil.copyfile(recording.finished, copy)

    facts = repair(copy)

    assert copy.read_bytes() == recording.finished.read_bytes()
    assert facts.frames == recording.info.frames
