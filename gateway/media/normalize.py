"""Turning what a source demuxes into clean packets: sane timestamps, marked continuations.

Cameras and the RTSP demuxer produce things a muxer refuses: a picture split into two packets
with the same timestamp (parameter sets sent apart from a slice), several distinct pictures
with one timestamp, a first packet with no timestamp, timestamps that repeat, step back, or
jump when the camera's clock is reset. Each track is repaired here, once, before the fan-out,
so that every consumer sees strictly increasing decode times starting near zero at the start of
the session (a split picture's second part is marked ``continuation`` and shares the first
part's timestamps).

Whether a video packet with its predecessor's timestamp is more of the same picture or the next
picture is read from the bitstream for H.264 and H.265 (:mod:`gateway.media.bitstream.pictures`),
never assumed from the timestamp: a signing camera was seen stamping six P pictures alike after
its first keyframe, and merging them into one MP4 sample made FFmpeg reject them (``Frame num
change``) and broke the camera's signature, which covers every NAL unit in order. Bytes are
never changed here: only which packets form one sample, and the timestamps.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from fractions import Fraction

from gateway.media.bitstream.nal import is_annexb
from gateway.media.bitstream.pictures import Role, h264_role, h265_role, scan
from gateway.media.codec import Codec
from gateway.media.packet import Packet, Track

__all__ = ["AccessUnitJoiner", "Normalizer", "RawPacket"]

log = logging.getLogger(__name__)

MAX_JUMP_SECONDS = 5.0
"""A timestamp step larger than this (forward or back) is a discontinuity, not elapsed time."""


@dataclass(slots=True)
class RawPacket:
    """A packet as demuxed, before repair: timestamps may be missing or wrong."""

    track: int
    data: bytes
    pts: int | None
    dts: int | None
    duration: int
    keyframe: bool
    received: float


@dataclass(slots=True)
class _TrackState:
    track: Track
    tick: float = 0.0
    max_jump: int = 0
    """MAX_JUMP_SECONDS in this track's time base."""
    last_raw: int | None = None
    """Input dts of the previous packet as demuxed (None if it had none)."""
    last_in: int | None = None
    """Last real input dts this track's timeline is anchored to."""
    last_out: int | None = None
    last_pts: int = 0
    offset: int = 0
    frame_duration: int = 0
    repaired: int = 0
    discontinuities: int = 0
    role: Role | None = None
    """How this track's access units are told apart: by its H.264 or H.265 NAL units, or by the
    timestamp alone (None: a codec whose bitstream is not read here)."""
    unit: bytes | None = None
    """The packet that opened the access unit last returned (a reference, not a copy)."""
    unit_slice: bool | None = None
    """Whether that access unit holds a slice yet (None: not looked at yet)."""
    moved: bool = False
    """The previous packet was a picture moved off its predecessor's timestamps."""
    frozen: bool = False
    """The camera stamped more than MAX_JUMP_SECONDS of pictures alike (logged once)."""


class Normalizer:
    """Per-session repair of one camera's packets. Not thread-safe: one source thread owns it.

    Nothing is held back: a packet is repaired and returned as soon as it is demuxed. A video
    packet with the same timestamp as the previous one is returned as a ``continuation`` of it
    when it is more of the same picture (parameter sets sent apart from their slice, a picture
    sliced into several packets); when its bitstream opens a new picture, it is a picture of its
    own, moved one frame interval after its predecessor (dts and pts alike). H.264 and H.265
    packets are read as Annex B (what FFmpeg's RTP depacketisers and libx264 give); any other
    codec or layout keeps the old rule: the same timestamp is the same picture.

    One frame interval, not one tick: pictures a tick apart are distinct in the MP4 but not to
    a player or to ``ffmpeg``, which put them on a grid of the frame rate (``ffmpeg -i FILE -f
    null -`` reports them as non-monotonic timestamps). Where the camera's clock went on at its
    frame rate past the pictures it stamped alike, the moved pictures land exactly on the
    frames it skipped. Where its next timestamp comes earlier than a moved picture, that
    packet is put one tick after it, as any timestamp that steps back, and the timeline has
    caught up with the camera's within as many pictures as were moved. A camera whose clock
    stands still gets a timeline at its frame rate, never more than MAX_JUMP_SECONDS ahead of
    its own.
    """

    def __init__(self, tracks: tuple[Track, ...], *, camera_id: str) -> None:
        self._camera_id = camera_id
        self._tracks = {
            t.index: _TrackState(
                t,
                tick=float(t.time_base),
                max_jump=round(MAX_JUMP_SECONDS / t.time_base),
                role=_ROLES.get(t.codec) if t.kind == "video" else None,
            )
            for t in tracks
        }
        self._origin: float | None = None

    @property
    def repaired(self) -> int:
        """Packets whose timestamps had to be invented or moved."""
        return sum(s.repaired for s in self._tracks.values())

    @property
    def discontinuities(self) -> int:
        return sum(s.discontinuities for s in self._tracks.values())

    def push(self, raw: RawPacket) -> Packet | None:
        """Repair one demuxed packet (None for a track that is not followed)."""
        state = self._tracks.get(raw.track)
        if state is None:
            return None
        track = state.track
        repeat = (
            track.kind == "video"
            and raw.dts is not None
            and raw.dts == state.last_raw
            and state.last_out is not None
        )
        if repeat and _same_access_unit(state, raw.data):
            assert state.last_out is not None  # noqa: S101 - for mypy: set by the first packet
            return self._packet(state, raw, state.last_out, state.last_pts, continuation=True)
        guess = state.frame_duration or raw.duration or _default_duration(track)
        dts_in = raw.dts if raw.dts is not None else raw.pts
        if dts_in is None:
            # No timestamp at all: one frame after the previous packet; the next timestamped
            # packet re-anchors the timeline after it.
            state.repaired += 1
            dts = state.last_out + guess if state.last_out is not None else 0
            state.last_in = None
            state.last_raw = None
            return self._emit(state, raw, dts, dts)
        pts_in = raw.pts if raw.pts is not None else dts_in
        tb = track.time_base
        if state.last_in is None:
            if state.last_out is None:
                if self._origin is None:
                    self._origin = float(dts_in * tb)
                state.offset = -round(self._origin / tb)
            else:
                state.offset = state.last_out + guess - dts_in
                if self._origin is None:
                    self._origin = float(-state.offset * tb)
        else:
            step = dts_in - state.last_in
            if abs(step) > state.max_jump:
                state.discontinuities += 1
                assert state.last_out is not None  # noqa: S101 - for mypy: set by the first packet
                state.offset = state.last_out + guess - dts_in
                log.warning(
                    "camera %s: %s timestamps jumped by %.1f s; continuing the timeline",
                    self._camera_id,
                    track.kind,
                    float(step * tb),
                )
            elif step > 0 and not state.moved:
                state.frame_duration = step  # (after moved pictures, it spans several)
        dts = dts_in + state.offset
        pts = pts_in + state.offset
        if repeat:
            # The next picture, with its predecessor's timestamps: one frame interval after
            # it, pts moved alike (see the class's docstring).
            assert state.last_out is not None  # noqa: S101 - for mypy: set by the first packet
            state.repaired += 1
            lead = state.last_out + guess - dts
            if lead > state.max_jump:
                self._frozen(state, lead)
            pts += lead
            dts += lead
        elif state.last_out is not None and dts <= state.last_out:
            state.repaired += 1
            dts = state.last_out + 1
        state.moved = repeat
        state.last_in = dts_in
        state.last_raw = raw.dts
        return self._emit(state, raw, dts, max(pts, dts))

    def _frozen(self, state: _TrackState, lead: int) -> None:
        """More than MAX_JUMP_SECONDS of pictures stamped alike (a frozen camera clock): the
        camera's timestamps are followed again from here, as after a jump, so that once its
        clock moves again the timeline is never more than that ahead of it."""
        state.offset += lead
        state.discontinuities += 1
        if not state.frozen:
            state.frozen = True
            log.warning(
                "camera %s: more than %g s of pictures share one timestamp; continuing the "
                "timeline at the frame rate",
                self._camera_id,
                MAX_JUMP_SECONDS,
            )

    def _emit(self, state: _TrackState, raw: RawPacket, dts: int, pts: int) -> Packet:
        state.last_out = dts
        state.last_pts = pts
        if state.role is not None:
            state.unit, state.unit_slice = raw.data, None
        return self._packet(state, raw, dts, pts, continuation=False)

    def _packet(
        self, state: _TrackState, raw: RawPacket, dts: int, pts: int, *, continuation: bool
    ) -> Packet:
        track = state.track
        guess = state.frame_duration or raw.duration or _default_duration(track)
        return Packet(
            track=track.index,
            data=raw.data,
            pts=pts,
            dts=dts,
            duration=raw.duration or guess,
            time_base=track.time_base,
            tick=state.tick,
            keyframe=raw.keyframe,
            is_video=track.kind == "video",
            received=raw.received,
            continuation=continuation,
        )


class AccessUnitJoiner:
    """Joins continuation packets back to the packet they continue, for muxers that need
    whole access units (the recorder's MP4). Holds each video packet until the next one.

    Which packets continue a picture is the :class:`Normalizer`'s decision (``continuation``),
    read from the bitstream for H.264 and H.265; the joiner only concatenates them, bytes
    unchanged and in order.
    """

    def __init__(self) -> None:
        self._pending: dict[int, Packet] = {}

    def push(self, packet: Packet) -> list[Packet]:
        """The packets now whole (zero, one or two)."""
        if packet.continuation:
            held = self._pending.get(packet.track)
            if held is not None:
                self._pending[packet.track] = dataclasses.replace(
                    held, data=held.data + packet.data, keyframe=held.keyframe or packet.keyframe
                )
            return []  # a continuation without its start (joined mid-picture) is useless
        out = []
        held = self._pending.pop(packet.track, None)
        if held is not None:
            out.append(held)
        if packet.is_video:
            self._pending[packet.track] = packet
        else:
            out.append(packet)
        return out

    def flush(self) -> list[Packet]:
        out = list(self._pending.values())
        self._pending.clear()
        return out


# -- telling access units apart: gateway.media.bitstream.pictures -----------------------------

_ROLES: dict[Codec, Role] = {"h264": h264_role, "hevc": h265_role}
"""Codecs whose access units are told apart by their NAL units, and how."""


def _same_access_unit(state: _TrackState, data: bytes) -> bool:
    """Whether a video packet with its predecessor's timestamp continues its access unit.

    Only such packets are read (a new timestamp is a new picture without a look), so a camera
    that never repeats a timestamp costs nothing here; a packet that is not Annex B H.264 or
    H.265 continues, as the same timestamp always meant.
    """
    role, unit = state.role, state.unit
    if role is None or unit is None or not is_annexb(data) or not is_annexb(unit):
        return True
    if state.unit_slice is None:
        state.unit_slice = scan(unit, role, False)[1]
    opens, holds_slice = scan(data, role, state.unit_slice)
    if opens:
        return False
    state.unit_slice = state.unit_slice or holds_slice
    return True


def _default_duration(track: Track) -> int:
    seconds = Fraction(1, 25) if track.kind == "video" else Fraction(1, 50)
    return max(1, round(seconds / track.time_base))
