"""Turning what a source demuxes into clean packets: whole access units, sane timestamps.

Cameras and the RTSP demuxer produce things a muxer refuses: a frame split into two packets with
the same timestamp (parameter sets sent apart from the slice), a first packet with no timestamp,
timestamps that repeat, step back, or jump when the camera's clock is reset. Each track is repaired
here, once, before the fan-out, so that every consumer sees strictly increasing decode times that
start near zero at the start of the session.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction

from gateway.media.packet import Packet, Track

__all__ = ["Normalizer", "RawPacket"]

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
    pending: RawPacket | None = None
    last_in: int | None = None
    last_out: int | None = None
    offset: int = 0
    frame_duration: int = 0
    repaired: int = 0
    discontinuities: int = 0


class Normalizer:
    """Per-session repair of one camera's packets. Not thread-safe: one source thread owns it.

    Video packets are held until the next packet of the same track shows whether they were
    complete (same timestamp: merged, it was one picture split in two; new timestamp: released).
    Audio packets pass at once.
    """

    def __init__(self, tracks: tuple[Track, ...], *, camera_id: str) -> None:
        self._camera_id = camera_id
        self._tracks = {t.index: _TrackState(t) for t in tracks}
        self._origin: float | None = None

    @property
    def repaired(self) -> int:
        """Packets whose timestamps had to be invented or moved."""
        return sum(s.repaired for s in self._tracks.values())

    @property
    def discontinuities(self) -> int:
        return sum(s.discontinuities for s in self._tracks.values())

    def push(self, raw: RawPacket) -> list[Packet]:
        """Take one demuxed packet; return the packets now complete (zero, one or two)."""
        state = self._tracks.get(raw.track)
        if state is None:
            return []
        if state.track.kind != "video":
            return [self._emit(state, raw)]
        pending = state.pending
        if pending is None:
            state.pending = raw
            return []
        if pending.dts is not None and raw.dts == pending.dts:
            state.pending = _merge(pending, raw)
            return []
        if pending.dts is None and raw.dts is not None:
            # A packet without timestamp (typically the first): one frame before its successor.
            step = state.frame_duration or raw.duration or _default_duration(state.track)
            if state.last_in is None or raw.dts - step > state.last_in:
                pending.dts = pending.pts = raw.dts - step
                state.repaired += 1
        state.pending = raw
        return [self._emit(state, pending)]

    def flush(self) -> list[Packet]:
        """Release held packets (end of session)."""
        out = []
        for state in self._tracks.values():
            if state.pending is not None:
                out.append(self._emit(state, state.pending))
                state.pending = None
        return out

    def _emit(self, state: _TrackState, raw: RawPacket) -> Packet:
        track = state.track
        tb = track.time_base
        dts_in = raw.dts if raw.dts is not None else raw.pts
        pts_in = raw.pts if raw.pts is not None else dts_in
        guess = state.frame_duration or raw.duration or _default_duration(track)
        if dts_in is None:
            # No timestamp at all: one frame after the previous one.
            state.repaired += 1
            dts_in = (state.last_in + guess) if state.last_in is not None else 0
            pts_in = dts_in
        assert pts_in is not None
        if self._origin is None:
            self._origin = float(dts_in * tb)
        if state.last_in is None:
            state.offset = -round(self._origin / tb)
        else:
            step = dts_in - state.last_in
            if abs(step * tb) > MAX_JUMP_SECONDS:
                state.discontinuities += 1
                assert state.last_out is not None
                state.offset = state.last_out + guess - dts_in
                log.warning(
                    "camera %s: %s timestamps jumped by %.1f s; continuing the timeline",
                    self._camera_id,
                    track.kind,
                    float(step * tb),
                )
            elif step > 0:
                state.frame_duration = step
        dts = dts_in + state.offset
        if state.last_out is not None and dts <= state.last_out:
            state.repaired += 1
            dts = state.last_out + 1
        pts = max(pts_in + state.offset, dts)
        state.last_in = dts_in
        state.last_out = dts
        return Packet(
            track=track.index,
            data=raw.data,
            pts=pts,
            dts=dts,
            duration=raw.duration or guess,
            time_base=tb,
            keyframe=raw.keyframe,
            is_video=track.kind == "video",
            received=raw.received,
        )


def _merge(first: RawPacket, second: RawPacket) -> RawPacket:
    return RawPacket(
        track=first.track,
        data=first.data + second.data,
        pts=first.pts if first.pts is not None else second.pts,
        dts=first.dts if first.dts is not None else second.dts,
        duration=first.duration or second.duration,
        keyframe=first.keyframe or second.keyframe,
        received=second.received,
    )


def _default_duration(track: Track) -> int:
    seconds = Fraction(1, 25) if track.kind == "video" else Fraction(1, 50)
    return max(1, round(seconds / track.time_base))
