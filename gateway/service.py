"""The daemon: wires storage, cameras, fan-out, recorders and forwards, and stops them cleanly.

Per camera: a source thread (:mod:`gateway.camera`) publishes into a :class:`~gateway.stream.Stream`
whose readers (the recorder; the forwarder during a forward session) each run on their own thread.
The control socket and, later, MQTT reach the forwards through :class:`ForwardManager`.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from gateway.audit import AuditLog
from gateway.camera import CameraWorker
from gateway.config import CameraConfig, Config
from gateway.control import ControlServer, Peer
from gateway.forward.commands import CommandError, parse_command
from gateway.forward.manager import ForwardManager, ForwardSource
from gateway.forward.pusher import GOP_CACHE_BYTES
from gateway.forward.sources import main_stream_source, substream_source
from gateway.metrics import MetricsSnapshot, serve_metrics
from gateway.recorder.recorder import Recorder
from gateway.state import CameraStatus
from gateway.statusview import status_document
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
        self.forwards: ForwardManager | None = None
        self.control: ControlServer | None = None
        self.started = time.monotonic()
        self._stop = threading.Event()

    def start(self, *, metrics: bool = True) -> None:
        self.storage.open()
        self.storage.start()
        if metrics:
            listen = self.config.metrics
            serve_metrics(listen.host, listen.port, self.snapshot)
        sources: dict[str, ForwardSource] = {}
        for camera in self.config.cameras:
            runtime = self._add_camera(camera)
            sources[camera.id] = (
                substream_source(camera)
                if camera.forward_url
                else main_stream_source(runtime.stream)
            )
        self.forwards = ForwardManager(
            site_id=self.config.site_id,
            uplink=self.config.uplink,
            cameras={c.id: c for c in self.config.cameras},
            statuses={c: rt.status.forward for c, rt in self.cameras.items()},
            sources=sources,
            audit=AuditLog(self.config.audit.path / "forward-sessions.jsonl"),
        )
        self.forwards.start()
        self._start_control()
        log.info(
            "site %s: %d camera(s), recording to %s",
            self.config.site_id,
            len(self.cameras),
            self.storage.root,
        )

    def _start_control(self) -> None:
        server = ControlServer(self.config.control.socket, self._control_request)
        try:
            server.start()
        except OSError as exc:
            log.error(
                "control socket %s unavailable (%s): the forward and status commands will not "
                "reach this daemon; set control.socket to a writable place",
                self.config.control.socket,
                exc.strerror or exc,
            )
            return
        self.control = server

    def _control_request(self, request: dict[str, Any], peer: Peer) -> dict[str, Any]:
        command = request.get("command")
        if command == "status":
            snap = self.snapshot()
            return {
                "ok": True,
                "status": status_document(
                    snap.site_id, snap.cameras, snap.storage, uptime=time.monotonic() - self.started
                ),
            }
        if command == "forward" and self.forwards is not None:
            fields = {k: v for k, v in request.items() if k != "command"}
            fields["origin"] = f"command line, {peer.describe()}"
            fields.setdefault("requested_by", peer.user)
            try:
                forward = parse_command(fields)
            except CommandError as exc:
                return {"ok": False, "message": str(exc)}
            return self.forwards.request(forward).as_dict()
        return {"ok": False, "message": f"unknown command {command!r}"}

    def _add_camera(self, camera: CameraConfig) -> CameraRuntime:
        status = CameraStatus(id=camera.id, url=camera.display_url)
        forwards_main = (
            self.config.uplink is not None and camera.forward != "off" and not camera.forward_url
        )
        stream = Stream(camera.id, gop_cache_bytes=GOP_CACHE_BYTES if forwards_main else 0)
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
        runtime = self.cameras[camera.id] = CameraRuntime(camera, status, stream, worker)
        worker.start()
        return runtime

    def snapshot(self) -> MetricsSnapshot:
        return MetricsSnapshot(
            site_id=self.config.site_id,
            cameras=[(rt.status, rt.stream.readers) for rt in self.cameras.values()],
            storage=self.storage.usage,
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """Stop pulling, finalise open segments, release the storage. True if all in time."""
        deadline = time.monotonic() + timeout
        if self.forwards is not None:
            self.forwards.stop_all("shutdown")
        if self.control is not None:
            self.control.stop()
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
