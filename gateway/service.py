"""The daemon: wires storage, cameras, fan-out and recorders, and stops them cleanly.

Per camera: a source thread (:mod:`gateway.camera`) publishes into a :class:`~gateway.stream.Stream`
whose readers (the recorder now; the forwarder and analyser later) each run on their own thread.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

from gateway.camera import CameraWorker
from gateway.config import CameraConfig, Config
from gateway.metrics import MetricsSnapshot, serve_metrics
from gateway.recorder.recorder import Recorder
from gateway.state import CameraStatus
from gateway.storage.retention import RetentionPolicy
from gateway.storage.store import Storage
from gateway.stream import Stream

__all__ = ["RECORDER_QUEUE_BYTES", "RECORDER_QUEUE_SECONDS", "STOP_TIMEOUT", "Gateway"]

log = logging.getLogger(__name__)

STOP_TIMEOUT = 5.0
"""Seconds within which a stop finalises every open segment."""
RECORDER_QUEUE_SECONDS = 10.0
RECORDER_QUEUE_BYTES = 64 * 1024 * 1024


@dataclass(slots=True)
class CameraRuntime:
    config: CameraConfig
    status: CameraStatus
    stream: Stream
    worker: CameraWorker


class Gateway:
    """Start with :meth:`start`, stop with :meth:`stop` (or run :meth:`serve` until a signal)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        storage = config.storage
        self.storage = Storage(
            storage.path,
            RetentionPolicy(
                quota=storage.quota, max_age=storage.max_age, min_free=storage.min_free
            ),
        )
        self.cameras: dict[str, CameraRuntime] = {}
        self.started = time.monotonic()
        self._stop = threading.Event()

    def start(self, *, metrics: bool = True) -> None:
        self.storage.open()
        self.storage.start()
        if metrics:
            listen = self.config.metrics
            serve_metrics(listen.host, listen.port, self.snapshot)
        for camera in self.config.cameras:
            self._add_camera(camera)
        log.info(
            "site %s: %d camera(s), recording to %s",
            self.config.site_id,
            len(self.cameras),
            self.storage.root,
        )

    def _add_camera(self, camera: CameraConfig) -> None:
        status = CameraStatus(id=camera.id, url=camera.display_url)
        stream = Stream(camera.id)
        if camera.record:
            recorder = Recorder(
                camera.id,
                self.storage,
                segment_duration=self.config.storage.segment_duration,
                status=status.recorder,
            )
            stream.add_reader(
                recorder, max_seconds=RECORDER_QUEUE_SECONDS, max_bytes=RECORDER_QUEUE_BYTES
            )
        else:
            status.recorder.enabled = False
        worker = CameraWorker(camera, stream, status)
        self.cameras[camera.id] = CameraRuntime(camera, status, stream, worker)
        worker.start()

    def snapshot(self) -> MetricsSnapshot:
        return MetricsSnapshot(
            site_id=self.config.site_id,
            cameras=[(rt.status, rt.stream.readers) for rt in self.cameras.values()],
            storage=self.storage.usage,
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """Stop pulling, finalise open segments, release the storage. True if all in time."""
        deadline = time.monotonic() + timeout
        for runtime in self.cameras.values():
            runtime.worker.stop()
        finished = True
        for runtime in self.cameras.values():
            remaining = max(0.1, deadline - time.monotonic() - 0.2)
            finished &= runtime.stream.close(timeout=remaining)
        if not finished:
            log.error("some recorders did not finish within %.0f s", timeout)
        self.storage.close()
        return finished

    def serve(
        self, *, every: Callable[[], None] | None = None, duration: float | None = None
    ) -> int:
        """Run until SIGTERM/SIGINT (or ``duration`` seconds); ``every`` runs once a second."""

        def request_stop(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s: stopping", signal.Signals(signum).name)
            self._stop.set()

        previous = {s: signal.signal(s, request_stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            end = None if duration is None else time.monotonic() + duration
            while not self._stop.wait(1.0):
                if every is not None:
                    every()
                if end is not None and time.monotonic() >= end:
                    break
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        started = time.monotonic()
        clean = self.stop()
        log.info("stopped in %.1f s", time.monotonic() - started)
        return 0 if clean else 1
