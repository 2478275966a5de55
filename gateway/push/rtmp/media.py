"""What an RTMP publish carries of a camera's packets: the tracks it can take, onMetaData and
the sequence headers, and each packet as an FLV body with its time in milliseconds.

The first H.264 video track and the first AAC audio track that has its AudioSpecificConfig
are carried; anything else is skipped. Video starts at the first keyframe; times are
milliseconds since the first packet, never decreasing per track. A video packet without a slice
(parameter sets or SEI that the camera sent apart from the picture) is held and put in front of
the next one, so that each picture is one FLV tag.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

from gateway.media.bitstream.h264 import parameter_sets
from gateway.media.packet import Packet, Track
from gateway.push.error import PushError
from gateway.push.rtmp.amf0 import EcmaArray, encode
from gateway.push.rtmp.chunk import MessageType
from gateway.push.rtmp.flv import (
    AAC_FRAME,
    aac_sequence_header,
    avc_config_record,
    avc_decoder_config,
    avc_frame,
    avc_sequence_header,
)

__all__ = ["CS_AUDIO", "CS_DATA", "CS_VIDEO", "Body", "FlvMedia"]

CS_AUDIO = 4
CS_DATA = 5
CS_VIDEO = 6
_MAX_HELD = 256 * 1024


Body: TypeAlias = tuple[int, int, int, Sequence[bytes | memoryview]]
"""One media message to send: chunk stream, message type, time (ms) and the body's parts (a
plain tuple: one is made for every packet)."""


class FlvMedia:
    """The media side of one RTMP publish session."""

    def __init__(self, tracks: tuple[Track, ...]) -> None:
        self._tracks = tracks
        self.video: Track | None = next(
            (t for t in tracks if t.kind == "video" and t.codec == "h264"), None
        )
        self.audio: Track | None = next(
            (t for t in tracks if t.kind == "audio" and t.codec == "aac" and t.extradata), None
        )
        self.skipped = [t for t in tracks if t is not self.video and t is not self.audio]
        self._scales: dict[int, tuple[int, int]] = {
            t.index: (t.time_base.numerator * 1000, t.time_base.denominator) for t in tracks
        }
        self._origin: int | None = None
        self._last_ms: dict[int, int] = {}
        self._avc_config: bytes | None = None
        self._video_started = False
        self._held: tuple[bytes, bool] | None = None

    def check(self) -> None:
        """:class:`PushError` if RTMP cannot carry this camera."""
        video = next((t for t in self._tracks if t.kind == "video"), None)
        if video is not None and self.video is None:
            raise PushError(f"{video.codec_name} cannot be sent over RTMP; use rtsp:// or rtsps://")
        if self.video is None and self.audio is None:
            raise PushError("no track that RTMP can carry (H.264 video, AAC audio)")

    def headers(self) -> list[Body]:
        """onMetaData, then the AVC and AAC sequence headers."""
        meta = EcmaArray(duration=0.0)
        video, audio = self.video, self.audio
        if video is not None:
            meta.update(width=float(video.width), height=float(video.height))
            rate = _frame_rate(video)
            if rate:
                meta["framerate"] = rate
            meta["videocodecid"] = 7.0
        if audio is not None:
            meta.update(
                audiocodecid=10.0,
                audiosamplerate=float(audio.sample_rate),
                audiosamplesize=16.0,
                stereo=audio.channels >= 2,
            )
        meta["encoder"] = "camera-gateway"
        bodies: list[Body] = [
            (CS_DATA, MessageType.DATA, 0, [encode("@setDataFrame", "onMetaData", meta)])
        ]
        if video is not None and video.extradata:
            self._avc_config = avc_decoder_config(video.extradata)
            if self._avc_config is not None:
                header = avc_sequence_header(self._avc_config)
                bodies.append((CS_VIDEO, MessageType.VIDEO, 0, [header]))
        if audio is not None and audio.extradata:
            header = aac_sequence_header(audio.extradata)
            bodies.append((CS_AUDIO, MessageType.AUDIO, 0, [header]))
        return bodies

    def bodies(self, packet: Packet) -> list[Body]:
        """What one packet becomes (often one body, none for a packet held or not carried)."""
        video = self.video
        if video is not None and packet.track == video.index:
            return self._video(packet, video)
        if self.audio is not None and packet.track == self.audio.index:
            ms = self._ms(packet.track, packet.dts)
            return [(CS_AUDIO, MessageType.AUDIO, ms, [AAC_FRAME, packet.data])]
        return []

    def _video(self, packet: Packet, track: Track) -> list[Body]:
        data, keyframe = packet.data, packet.keyframe
        held = self._held
        if held is not None:
            # Parameter sets or SEI that came apart from their picture go in front of it.
            self._held = None
            data = held[0] + data
            keyframe = keyframe or (packet.continuation and held[1])
        composition = 0
        if packet.pts != packet.dts:
            num, den = self._scales[track.index]
            composition = max(0, ((packet.pts - packet.dts) * num + den // 2) // den)
        frame = avc_frame(data, keyframe, composition)
        if not frame.picture:
            if len(data) <= _MAX_HELD:
                self._held = (data, keyframe)
            return []
        header = b""
        if frame.keyframe:
            config = avc_config_record(*parameter_sets(data)) or self._avc_config
            if config is None:
                return []  # no parameter sets yet: nothing could decode this
            if config != self._avc_config:
                self._avc_config = config
                header = avc_sequence_header(config)
            self._video_started = True
        elif not self._video_started:
            return []  # a picture that needs an earlier keyframe
        ms = self._ms(track.index, packet.dts)
        body = (CS_VIDEO, MessageType.VIDEO, ms, frame.parts)
        if header:
            return [(CS_VIDEO, MessageType.VIDEO, ms, [header]), body]
        return [body]

    def _ms(self, track: int, ticks: int) -> int:
        """Milliseconds since the first packet of the session; never decreasing per track."""
        num, den = self._scales[track]
        ms = (ticks * num + den // 2) // den
        if self._origin is None:
            self._origin = ms
        ms -= self._origin
        ms = max(ms, self._last_ms.get(track, 0))
        self._last_ms[track] = ms
        return ms


def _frame_rate(track: Track) -> float | None:
    """The frame rate the source declared, if any."""
    context = getattr(track.template, "codec_context", None)
    rate = getattr(context, "framerate", None)
    try:
        value = float(rate) if rate else 0.0
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return value if 0 < value <= 300 else None
