"""Turning what a source demuxes into clean packets: sane timestamps, marked continuations.

Cameras and the RTSP demuxer produce things a muxer refuses: a picture split into two packets
with the same timestamp (parameter sets sent apart from a slice), a first packet with no
timestamp, timestamps that repeat, step back, or jump when the camera's clock is reset. Each
track is repaired here, once, before the fan-out, so that every consumer sees strictly increasing
decode times starting near zero at the start of the session (a split picture's second part is
marked ``continuation`` and shares the first part's timestamps).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from fractions import Fraction

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


class Normalizer:
    """Per-session repair of one camera's packets. Not thread-safe: one source thread owns it.

    Nothing is held back: a packet is repaired and returned as soon as it is demuxed. A video
    packet with the same timestamp as the previous one (a picture the camera split in two) is
    returned as a ``continuation`` of it.
    """

    def __init__(self, tracks: tuple[Track, ...], *, camera_id: str) -> None:
        self._camera_id = camera_id
        self._tracks = {
            t.index: _TrackState(
                t, tick=float(t.time_base), max_jump=round(MAX_JUMP_SECONDS / t.time_base)
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
        if (
            track.kind == "video"
            and raw.dts is not None
            and raw.dts == state.last_raw
            and state.last_out is not None
        ):
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
        state.last_in = dts_in
        state.last_raw = raw.dts
        return self._emit(state, raw, dts, max(pts_in + state.offset, dts))

    def _emit(self, state: _TrackState, raw: RawPacket, dts: int, pts: int) -> Packet:
        state.last_out = dts
        state.last_pts = pts
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
    whole access units (the recorder's MP4). Holds each video packet until the next one."""

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


def _default_duration(track: Track) -> int:
    seconds = Fraction(1, 25) if track.kind == "video" else Fraction(1, 50)
    return max(1, round(seconds / track.time_base))
