"""Fragmented MP4 segments on real files: facts without decoding, and crash repair."""

from __future__ import annotations

import os
import shutil
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fmp4_craft import (
    FFMPEG_FPS,
    boxes,
    damaged,
    ffmpeg_segment,
    ffprobe_packets,
    forty_byte_empty_tkhd,
    fragments,
    with_empty_tkhd,
    with_giant_trun,
)
from helpers import decode_errors, ffprobe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.media.fmp4 import Fmp4Error, repair, scan
from gateway.media.normalize import Normalizer
from gateway.recorder.segment import FRAGMENT_SECONDS, SegmentWriter
from gateway.source.sim import SimSource
from gateway.storage.naming import segment_path
from gateway.storage.record import Segment

pytestmark = pytest.mark.skipif(shutil.which("ffprobe") is None, reason="needs ffprobe")

FPS = 25
SIM_URL = f"sim://t?fps={FPS}&gop=1&width=320&height=240"
CLIP_SECONDS = 3.0


@dataclass(frozen=True)
class Recording:
    finished: Path
    info: Segment
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
        # As much media as CLIP_SECONDS, however long a loaded machine takes to encode it.
        while writer.duration < CLIP_SECONDS:
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
    final = info.resolve(root)
    assert final.exists() and final.name.endswith(".mp4")
    return Recording(final, info, killed, written_at_kill, frames_at_kill)


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


# -- damaged and hostile files ------------------------------------------------------------------


@pytest.fixture(scope="module")
def with_audio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3 s ffmpeg segment with AAC audio: fragments of two tracks."""
    return ffmpeg_segment(tmp_path_factory.mktemp("ffmpeg") / "av.mp4", audio=True)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_an_empty_tkhd_is_a_damaged_header_not_a_crash(
    recording: Recording, tmp_path: Path
) -> None:
    for path in (
        _write(tmp_path / "forty.mp4", forty_byte_empty_tkhd()),
        _write(tmp_path / "real.mp4", with_empty_tkhd(recording.finished.read_bytes())),
    ):
        for call in (scan, repair):
            with pytest.raises(Fmp4Error, match="tkhd box of 0 bytes") as caught:
                call(path)
            assert not caught.value.header_only


@pytest.mark.parametrize("count", [200_000_000, 0xFFFFFFFF])
@pytest.mark.parametrize("per_sample", [False, True])
def test_a_run_claiming_more_samples_than_its_boxes_hold_is_dropped_at_once(
    recording: Recording, tmp_path: Path, count: int, per_sample: bool
) -> None:
    data = recording.finished.read_bytes()
    path = _write(tmp_path / "giant.mp4", with_giant_trun(data, count, per_sample=per_sample))
    whole = scan(recording.finished)

    started = time.monotonic()
    facts = scan(path)
    elapsed = time.monotonic() - started

    assert elapsed < 0.1, f"{elapsed:.3f} s to scan a {len(data)}-byte file"
    # The lying fragment is left out; the others are read as before.
    assert facts.fragments == whole.fragments - 1
    assert facts.damaged == 1
    assert 0 < facts.frames < whole.frames


def test_damaged_first_fragment_is_rebuilt_from_the_good_ones(
    recording: Recording, tmp_path: Path
) -> None:
    data = recording.finished.read_bytes()
    spans = fragments(data)
    part = _write(tmp_path / "first.mp4.part", damaged(data, spans[0][0] + 4, 40))
    rebuilt = tmp_path / "rebuilt.mp4"

    facts = repair(part, rebuild_to=rebuilt)

    assert part.read_bytes() == damaged(data, spans[0][0] + 4, 40)  # the original is kept
    assert facts.rebuilt and facts.damaged == 1
    assert facts.fragments == len(spans) - 1
    assert rebuilt.stat().st_size == facts.size
    assert decode_errors(rebuilt) == ""
    assert facts.frames == int(video_stream(rebuilt)["nb_read_packets"]) > 0
    # tfdt keeps the timeline: what is left ends where the recording ended, and starts on the
    # first keyframe after the damage (1 s: the camera's GOP), not at 0.
    whole = scan(recording.finished)
    assert facts.starts_on_keyframe is True
    assert abs(facts.start_offset - 1.0) <= 1 / FPS
    assert abs((facts.start_offset + facts.duration) - whole.duration) <= 1 / FPS
    assert facts.frames + facts.trimmed + round(FRAGMENT_SECONDS * FPS) >= whole.frames - 1


@pytest.mark.parametrize("where", ["moof", "mdat header", "mfhd"])
def test_damage_in_the_middle_keeps_the_fragments_on_both_sides(
    with_audio: Path, tmp_path: Path, where: str
) -> None:
    data = with_audio.read_bytes()
    spans = fragments(data)
    moof = spans[2][0]
    mdat = boxes(data, moof)[1][1]
    offset = {"moof": moof, "mdat header": mdat, "mfhd": moof + 8}[where]
    part = _write(tmp_path / "middle.mp4.part", damaged(data, offset, 12, fill=0))

    facts = repair(part)  # without rebuild_to: rebuilt in place

    assert facts.rebuilt and facts.damaged == 1
    assert facts.fragments == len(spans) - 1
    assert decode_errors(part) == ""
    video, audio = ffprobe_packets(part)
    assert video == facts.frames
    assert audio == facts.tracks[2].samples
    assert facts.duration == pytest.approx(scan(with_audio).duration, abs=1 / FFMPEG_FPS)
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_absolute_data_offsets_move_with_their_fragment(tmp_path: Path) -> None:
    """Without default_base_moof, ffmpeg gives each fragment an absolute base data offset."""
    source = ffmpeg_segment(tmp_path / "absolute.mp4", movflags="empty_moov", gop=13)
    data = source.read_bytes()
    spans = fragments(data)
    part = _write(tmp_path / "absolute.mp4.part", damaged(data, spans[1][0] + 4, 8))

    facts = repair(part)

    assert facts.rebuilt and facts.fragments == len(spans) - 1
    assert decode_errors(part) == ""
    assert ffprobe_packets(part) == [facts.frames]


def test_garbage_after_the_last_fragment_is_cut_in_place(
    recording: Recording, tmp_path: Path
) -> None:
    data = recording.finished.read_bytes()
    path = _write(tmp_path / "tail.mp4.part", data + bytes(5000) + b"\x00\x00\x10\x00moof")

    facts = repair(path)

    assert not facts.rebuilt and facts.damaged == 0
    assert path.read_bytes() == data
    assert facts.frames == recording.info.frames


def test_header_only_files_are_told_apart_from_damaged_ones(
    recording: Recording, tmp_path: Path
) -> None:
    data = recording.finished.read_bytes()
    moov = next(b for b in boxes(data) if b[0] == b"moov")
    cases = {
        "empty": (b"", True),
        "inside the header": (data[: moov[1] + 50], True),
        "header only": (data[: moov[2]], True),
        "damaged header size": (damaged(data, moov[1], 4), False),
        "not a segment": (b"hello, world" * 10, False),
    }
    for name, (content, header_only) in cases.items():
        path = _write(tmp_path / "case.mp4.part", content)
        with pytest.raises(Fmp4Error) as caught:
            repair(path)
        assert caught.value.header_only is header_only, name


def test_a_fifo_or_a_link_under_a_segment_name_is_refused_without_blocking(
    recording: Recording, tmp_path: Path
) -> None:
    fifo = tmp_path / "fifo.mp4"
    os.mkfifo(fifo)
    link = tmp_path / "link.mp4"
    link.symlink_to(recording.finished)

    with pytest.raises(Fmp4Error, match="not a regular file"):
        scan(fifo)
    with pytest.raises(OSError, match="link"):
        scan(link)


_FUZZ_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@st.composite
def mutations(draw: st.DrawFn, size: int) -> list[tuple[str, int, bytes]]:
    kinds = st.sampled_from(["flip", "overwrite", "insert", "delete", "truncate", "size"])
    steps = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(kinds)
        at = draw(st.integers(0, size - 1))
        blob = draw(st.binary(min_size=1, max_size=64))
        steps.append((kind, at, blob))
    return steps


def mutate(data: bytes, steps: list[tuple[str, int, bytes]]) -> bytes:
    out = bytearray(data)
    for kind, where, blob in steps:
        at = where % max(1, len(out))
        if not out and kind != "insert":
            continue
        if kind == "flip":
            out[at] ^= blob[0] | 1
        elif kind == "overwrite":
            out[at : at + len(blob)] = blob
        elif kind == "insert":
            out[at:at] = blob
        elif kind == "delete":
            del out[at : at + len(blob)]
        elif kind == "truncate":
            del out[at:]
        else:  # a box size or count field set to something extreme
            value = int.from_bytes(blob[:4].ljust(4, b"\0"), "big") | (0xFFFF0000 * (blob[0] & 1))
            out[at : at + 4] = value.to_bytes(4, "big")
    return bytes(out)


@_FUZZ_SETTINGS
@given(data=st.data())
def test_mutated_segments_only_ever_raise_fmp4error_and_never_hang(
    recording: Recording, with_audio: Path, tmp_path: Path, data: st.DataObject
) -> None:
    source = data.draw(st.sampled_from([recording.finished, with_audio]))
    original = source.read_bytes()
    mutated = mutate(original, data.draw(mutations(len(original))))
    path = _write(tmp_path / "fuzz.mp4.part", mutated)
    rebuilt = tmp_path / "fuzz-rebuilt.mp4"
    rebuilt.unlink(missing_ok=True)

    for call in (scan, lambda p: repair(p, rebuild_to=rebuilt)):
        started = time.monotonic()
        try:
            facts = call(path)
        except Fmp4Error:
            continue
        finally:
            elapsed = time.monotonic() - started
            assert elapsed < 1.0, f"{elapsed:.2f} s on a {len(mutated)}-byte file"
        # Every sample takes at least a byte; nothing is added, only dropped.
        assert 0 <= facts.frames <= len(mutated)
        assert facts.size <= len(mutated)
