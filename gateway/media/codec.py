"""Codec names as the daemon passes them around: one closed type that mypy checks.

The names are FFmpeg's (``AVCodecDescriptor.name``, PyAV's ``Codec.canonical_name``): what a
demuxed track is called, what an output format lists as supported, what a log line or the
status shows. A :data:`Codec` is a plain ``str`` at run time, so it goes into JSON, the index
and MQTT payloads unchanged; to mypy it is a ``Literal``, so ``track.codec == "h265"`` (FFmpeg
says ``hevc``) or ``== "g722"`` (``adpcm_g722``) is an error instead of a branch never taken.

The list holds the codecs the daemon does something with by name and those IP cameras send
(G.711, G.722, G.726, L16, MPEG audio); any other FFmpeg name becomes ``unknown`` when a track
is made (:func:`codec_of`): nothing here treats it by name, it is only recorded if MP4 takes
it and skipped by the forwarder otherwise. Importable without PyAV.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

__all__ = ["CODECS", "Codec", "codec_of"]

Codec = Literal[
    # video
    "h264",
    "hevc",
    "mjpeg",
    "mpeg4",
    # audio
    "aac",
    "opus",
    "pcm_alaw",
    "pcm_mulaw",
    "pcm_s16be",
    "adpcm_g722",
    "adpcm_g726",
    "adpcm_g726le",
    "mp2",
    "mp3",
    # anything else FFmpeg can demux
    "unknown",
]

CODECS: Final[frozenset[Codec]] = frozenset(get_args(Codec))

_BY_NAME: Final[dict[str, Codec]] = {codec: codec for codec in CODECS}


def codec_of(name: str) -> Codec:
    """The :data:`Codec` FFmpeg calls ``name`` (``unknown`` for a codec not listed)."""
    return _BY_NAME.get(name, "unknown")
