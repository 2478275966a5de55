"""Where a forward (or the integrity watch) takes its packets: the camera's own stream, or a
substream (``forward_url``) pulled only while something needs it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from gateway.config import CameraConfig
from gateway.forward.pusher import GOP_CACHE_BYTES
from gateway.source.pull import PullLoop
from gateway.stream import Stream
from gateway.telemetry.state import CameraStatus

__all__ = ["ForwardFeed", "main_stream_feed", "substream_feed"]


@dataclass(frozen=True, slots=True)
class ForwardFeed:
    """Where a camera's forward takes its packets: its main stream, or a substream pulled
    only while a session needs it."""

    acquire: Callable[[], Stream]
    release: Callable[[], None]


def main_stream_feed(stream: Stream) -> ForwardFeed:
    return ForwardFeed(acquire=lambda: stream, release=lambda: None)


def substream_feed(camera: CameraConfig) -> ForwardFeed:
    """Starts a second pull of the camera (its ``forward_url``) at the first acquire, stops it
    at the last release (the forward and the integrity watch may both hold it)."""
    assert camera.forward_url is not None  # noqa: S101 - for mypy: only called with one
    substream = camera.model_copy(
        update={"url": camera.forward_url, "forward_url": None, "record": False}
    )
    lock = threading.Lock()
    running: list[tuple[PullLoop, Stream]] = []
    holders = [0]

    def acquire() -> Stream:
        with lock:
            holders[0] += 1
            if not running:
                stream = Stream(camera.id, gop_cache_bytes=GOP_CACHE_BYTES)
                status = CameraStatus(id=camera.id, url=camera.display_forward_url or "")
                worker = PullLoop(substream, stream, status, role="forward substream")
                worker.start()
                running.append((worker, stream))
            return running[0][1]

    def release() -> None:
        with lock:
            holders[0] = max(0, holders[0] - 1)
            if running and not holders[0]:
                worker, stream = running.pop()
                worker.stop()
                stream.close(timeout=2)

    return ForwardFeed(acquire=acquire, release=release)
