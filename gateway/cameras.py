"""The running cameras: each one's status, stream, source thread and recorder, built from its
configuration, started and stopped as a unit (at start, at stop, and on a reload)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from gateway.camera import CameraWorker
from gateway.config import CameraConfig, Config
from gateway.events import EventBus
from gateway.forward.manager import ForwardSource
from gateway.forward.pusher import GOP_CACHE_BYTES
from gateway.forward.sources import main_stream_source, substream_source
from gateway.recorder.recorder import Recorder
from gateway.state import CameraStatus
from gateway.storage.store import Storage
from gateway.stream import Stream

__all__ = ["RECORDER_QUEUE_BYTES", "RECORDER_QUEUE_SECONDS", "CameraRuntime", "start_camera"]

log = logging.getLogger(__name__)

RECORDER_QUEUE_SECONDS = 10.0
RECORDER_QUEUE_BYTES = 64 * 1024 * 1024
RECORDER_BATCH = 0.1
"""The recorder takes its packets ten times a second: a fraction of the thread wake-ups, and at
most 0.1 s more to lose on a crash (within the 1 s promised)."""


@dataclass(slots=True)
class CameraRuntime:
    config: CameraConfig
    status: CameraStatus
    stream: Stream
    worker: CameraWorker | None
    """None for a camera neither recorded nor forwarded: it is not pulled at all."""
    source: ForwardSource

    def stop(self, timeout: float) -> bool:
        """Stop pulling and let the recorder finish its segment; True if in time."""
        if self.worker is not None:
            self.worker.stop()
        return self.stream.close(timeout=timeout)


def start_camera(
    camera: CameraConfig, config: Config, storage: Storage, events: EventBus
) -> CameraRuntime:
    status = CameraStatus(id=camera.id, url=camera.display_url)
    forwarded = config.uplink is not None and camera.forward != "off"
    stream = Stream(
        camera.id, gop_cache_bytes=GOP_CACHE_BYTES if forwarded and not camera.forward_url else 0
    )
    source = substream_source(camera) if camera.forward_url else main_stream_source(stream)
    if camera.record:
        recorder = Recorder(
            camera.id,
            storage,
            segment_duration=config.storage.segment_duration,
            status=status.recorder,
            events=events,
        )
        stream.add_reader(
            recorder,
            max_seconds=RECORDER_QUEUE_SECONDS,
            max_bytes=RECORDER_QUEUE_BYTES,
            batch=RECORDER_BATCH,
        )
    else:
        status.recorder.enabled = False
    worker = None
    if camera.record or (forwarded and not camera.forward_url):
        worker = CameraWorker(camera, stream, status, events=events)
        worker.start()
    else:
        status.set_state("disabled")
        log.info("camera %s: its main stream is neither recorded nor forwarded", camera.id)
    return CameraRuntime(camera, status, stream, worker, source)
