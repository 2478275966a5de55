"""RTSP and RTSPS pull over TCP, by packet (stream copy: nothing is decoded here)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import av
from av.container import InputContainer
from av.packet import Packet as AvPacket
from av.stream import Stream

from gateway.media.normalize import RawPacket
from gateway.media.packet import Track, track_from_stream
from gateway.source.errors import SourceError, describe_error

__all__ = ["OPEN_TIMEOUT", "READ_TIMEOUT", "RtspSource"]

log = logging.getLogger(__name__)

OPEN_TIMEOUT = 5.0
"""Seconds allowed for connect, DESCRIBE, SETUP, PLAY and probing."""
READ_TIMEOUT = 2.0
"""Seconds a read may wait for data. FFmpeg's RTSP client returns once more after the first
timeout (flushing what it held), so a silent camera is declared after at most twice this: 4 s."""

# Probe little: the SDP already names the codecs, and every probed second delays recording.
_FAST_PROBE = {"analyzeduration": "200000", "probesize": "65536"}
_SLOW_PROBE = {"analyzeduration": "2000000", "probesize": "1000000"}


class RtspSource:
    """Pulls one RTSP(S) URL with PyAV (FFmpeg's RTSP client), interleaved over TCP."""

    def __init__(self, url: str, *, camera_id: str, audio: bool = True) -> None:
        self._url = url
        self._camera_id = camera_id
        self._audio = audio
        self._container: InputContainer | None = None
        self._packets: Iterator[AvPacket[Stream]] | None = None
        self._index: dict[int, int] = {}
        self._slow_probe = False

    def open(self) -> tuple[Track, ...]:
        options = {
            "rtsp_transport": "tcp",
            # FFmpeg's own socket timeout bounds each read. PyAV's read timeout is not used: its
            # check takes the GIL on every FFmpeg I/O call, which costs more than the recording.
            "timeout": str(int(READ_TIMEOUT * 1_000_000)),
            **(_SLOW_PROBE if self._slow_probe else _FAST_PROBE),
        }
        started = time.monotonic()
        try:
            container = av.open(self._url, options=options, timeout=(OPEN_TIMEOUT, None))
        except Exception as exc:  # FFmpeg raises many types; each is mapped to a short reason
            raise _reason(exc, started) from None
        self._container = container
        video = next(iter(container.streams.video), None)
        if video is None:
            self.close()
            raise SourceError("the camera offers no video track")
        if not getattr(video.codec_context, "width", 0):
            # Probing was too short to learn the picture size; probe longer next time.
            self._slow_probe = True
            self.close()
            raise SourceError("video size unknown after probing; retrying with a longer probe")
        selected = [video, *(container.streams.audio if self._audio else ())]
        tracks = tuple(track_from_stream(i, s) for i, s in enumerate(selected))
        self._index = {s.index: i for i, s in enumerate(selected)}
        self._packets = container.demux(selected)
        return tracks

    def read(self) -> RawPacket:
        if self._packets is None:
            raise SourceError("not connected")
        while True:
            started = time.monotonic()
            try:
                packet = next(self._packets)
            except StopIteration:
                raise SourceError("the camera ended the stream") from None
            except Exception as exc:
                raise _reason(exc, started) from None
            if packet.size == 0:
                continue
            track = self._index.get(packet.stream.index)
            if track is None:
                continue
            return RawPacket(
                track=track,
                data=bytes(packet),
                pts=packet.pts,
                dts=packet.dts,
                duration=packet.duration or 0,
                keyframe=packet.is_keyframe,
                received=time.monotonic(),
            )

    def close(self) -> None:
        container, self._container, self._packets = self._container, None, None
        if container is not None:
            try:
                container.close()
            except Exception as exc:  # closing a broken connection may fail again; nothing to do
                log.debug("camera %s: error while closing: %s", self._camera_id, type(exc).__name__)


def _reason(exc: BaseException, started: float) -> SourceError:
    waited = time.monotonic() - started
    return describe_error(exc, timeout=round(waited) if waited >= READ_TIMEOUT * 0.9 else None)
