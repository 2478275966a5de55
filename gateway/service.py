"""The daemon: wires storage, cameras, forwards, the control socket and MQTT; runs the main loop
(readiness, status and watchdog for systemd, reload on SIGHUP); stops everything cleanly.

Per camera (:mod:`gateway.cameras`): a source thread publishes into a fan-out stream whose
readers (the recorder; the forwarder during a forward session) each run on their own thread.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from gateway.audit import AuditLog
from gateway.camera import join_workers
from gateway.cameras import CameraRuntime, start_camera
from gateway.clock import clock_synchronized
from gateway.config import Config, ConfigError, load_config
from gateway.control import ControlServer, Peer
from gateway.events import EventBus
from gateway.forward.commands import CommandError, parse_command
from gateway.forward.manager import ForwardManager
from gateway.health import MIN_WEDGED_AFTER, WEDGED_AFTER, problems
from gateway.memory import trim
from gateway.metrics import MetricsSnapshot, serve_metrics
from gateway.mqtt import MqttPublisher
from gateway.mqtt.publisher import MqttView
from gateway.statusview import status_document, summary
from gateway.storage.retention import RetentionPolicy
from gateway.storage.store import Storage
from gateway.systemd import Notifier

__all__ = ["STOP_TIMEOUT", "Gateway"]

log = logging.getLogger(__name__)

STOP_TIMEOUT = 5.0
"""Seconds within which a stop finalises every open segment."""
WORKER_JOIN = 1.0
"""Seconds a stop waits for camera threads: a connected one ends within a frame, while one inside
a connection attempt would hold the stop for up to the open timeout and gain nothing by it."""
FIRST_ATTEMPT_WAIT = 10.0
"""Longest wait for every camera's first connection attempt before declaring readiness."""
TRIM_EVERY = 60.0
"""Seconds between returns of freed memory to the system."""
_RESTART_ONLY = ("site_id", "storage", "metrics", "control", "audit", "mqtt", "uplink")


class Gateway:
    """Start with :meth:`start`, stop with :meth:`stop` (or run :meth:`serve` until a signal)."""

    def __init__(self, config: Config, *, config_path: Path | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.events = EventBus()
        storage = config.storage
        self.storage = Storage(
            storage.path,
            RetentionPolicy(
                quota=storage.quota, max_age=storage.max_age, min_free=storage.min_free
            ),
            events=self.events,
        )
        self.cameras: dict[str, CameraRuntime] = {}
        self.forwards: ForwardManager | None = None
        self.control: ControlServer | None = None
        self.mqtt: MqttPublisher | None = None
        self.notifier = Notifier()
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._reload = threading.Event()
        self.left_running: list[str] = []
        """Camera threads still inside FFmpeg after :meth:`stop` (see :func:`join_workers`)."""

    # -- start ---------------------------------------------------------------------------------

    def start(self, *, metrics: bool = True) -> None:
        self.storage.open()
        self.storage.start()
        if metrics:
            listen = self.config.metrics
            serve_metrics(listen.host, listen.port, self.snapshot)
        for camera in self.config.cameras:
            self.cameras[camera.id] = start_camera(camera, self.config, self.storage, self.events)
        self.forwards = ForwardManager(
            site_id=self.config.site_id,
            uplink=self.config.uplink,
            cameras={c: rt.config for c, rt in self.cameras.items()},
            statuses={c: rt.status.forward for c, rt in self.cameras.items()},
            sources={c: rt.source for c, rt in self.cameras.items()},
            audit=AuditLog(self.config.audit.path / "forward-sessions.jsonl"),
            events=self.events,
        )
        self.forwards.start()
        self._start_control()
        self._start_mqtt()
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

    def _start_mqtt(self) -> None:
        if self.config.mqtt is None:
            return
        self.mqtt = MqttPublisher(
            self.config.mqtt,
            site_id=self.config.site_id,
            view=self._mqtt_view,
            events=self.events.subscribe(),
            on_command=self._mqtt_command,
        )
        self.mqtt.start()

    def service_threads(self) -> list[tuple[str, bool]]:
        """The daemon's own long-lived threads and whether each is alive."""
        threads = [("storage", self.storage.alive)]
        if self.forwards is not None:
            threads.append(("forward sessions", self.forwards.alive))
        if self.control is not None:
            threads.append(("control socket", self.control.alive))
        if self.mqtt is not None:
            threads.append(("MQTT", self.mqtt.alive))
        return threads

    def wait_first_attempts(self, timeout: float) -> None:
        """Wait until every camera tried once, the timeout passes, or a stop is requested."""
        deadline = time.monotonic() + timeout
        for runtime in list(self.cameras.values()):
            while runtime.worker is not None and not runtime.worker.first_attempt.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    return
                runtime.worker.first_attempt.wait(min(0.1, remaining))

    # -- commands ------------------------------------------------------------------------------

    def _control_request(self, request: dict[str, Any], peer: Peer) -> dict[str, Any]:
        command = request.get("command")
        if command == "status":
            snap = self.snapshot()
            document = status_document(
                snap.site_id, snap.cameras, snap.storage, uptime=time.monotonic() - self.started
            )
            document["mqtt_connected"] = snap.mqtt_connected
            document["clock_synchronized"] = snap.clock_synchronized
            return {"ok": True, "status": document}
        if command == "forward":
            fields = {k: v for k, v in request.items() if k != "command"}
            fields.setdefault("requested_by", peer.user)
            return self._forward(fields, origin=f"command line, {peer.describe()}")
        return {"ok": False, "message": f"unknown command {command!r}"}

    def _mqtt_command(self, camera_id: str, payload: bytes) -> None:
        try:
            data = json.loads(payload)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            if self.forwards is not None:
                self.forwards.rejected(camera_id, "the payload is not a JSON object", origin="mqtt")
            return
        data.setdefault("requested_by", "mqtt")
        self._forward({**data, "camera": camera_id}, origin="mqtt")

    def _forward(self, fields: dict[str, Any], *, origin: str) -> dict[str, Any]:
        """The one way every channel's forward command goes."""
        if self.forwards is None:
            return {"ok": False, "message": "the gateway is starting"}
        fields["origin"] = origin
        try:
            command = parse_command(fields)
        except CommandError as exc:
            camera = fields.get("camera")
            self.forwards.rejected(
                camera if isinstance(camera, str) else None, str(exc), origin=origin
            )
            return {"ok": False, "message": str(exc)}
        return self.forwards.request(command).as_dict()

    # -- views ---------------------------------------------------------------------------------

    def snapshot(self) -> MetricsSnapshot:
        return MetricsSnapshot(
            site_id=self.config.site_id,
            cameras=[(rt.status, rt.stream.readers) for rt in self.cameras.values()],
            storage=self.storage.usage,
            max_age=self.config.storage.max_age,
            mqtt_connected=None if self.mqtt is None else self.mqtt.connected,
            clock_synchronized=clock_synchronized(),
        )

    def _mqtt_view(self) -> MqttView:
        return MqttView(
            uptime=time.monotonic() - self.started,
            cameras=[rt.status for rt in self.cameras.values()],
            storage=self.storage.usage,
            clock_synchronized=clock_synchronized(),
        )

    # -- reload --------------------------------------------------------------------------------

    def reload(self) -> bool:
        """Apply a changed configuration file to the cameras; keep the old one if it is bad."""
        if self.config_path is None:
            log.warning("reload asked, but the daemon was not started from a file")
            return False
        self.notifier.reloading()
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            log.error(
                "reload refused, the running configuration stays: %s", "; ".join(exc.problems)
            )
            return False
        for section in _RESTART_ONLY:
            if getattr(new, section) != getattr(self.config, section):
                log.warning("reload: %s changed; that takes effect at the next restart", section)
        old = {c.id: c for c in self.config.cameras}
        wanted = {c.id: c for c in new.cameras}
        effective = self.config.model_copy(update={"cameras": new.cameras})
        assert self.forwards is not None
        for camera_id in old.keys() - wanted.keys():
            self.forwards.set_camera(camera_id, None, reason="camera_removed")
            self.cameras.pop(camera_id).stop(timeout=STOP_TIMEOUT)
            log.info("reload: camera %s removed", camera_id)
        for camera_id, camera in wanted.items():
            if camera_id in old and old[camera_id] == camera:
                continue
            if camera_id in old:
                self.forwards.set_camera(camera_id, None, reason="camera_changed")
                self.cameras.pop(camera_id).stop(timeout=STOP_TIMEOUT)
            runtime = start_camera(camera, effective, self.storage, self.events)
            self.cameras[camera_id] = runtime
            self.forwards.set_camera(camera_id, camera, runtime.status.forward, runtime.source)
            log.info("reload: camera %s %s", camera_id, "changed" if camera_id in old else "added")
        self.config = effective
        return True

    # -- stop ----------------------------------------------------------------------------------

    def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """Stop pulling, finalise open segments, release the storage. True if all in time."""
        deadline = time.monotonic() + timeout
        if self.forwards is not None:
            self.forwards.stop_all("shutdown")
        if self.control is not None:
            self.control.stop()
        for runtime in self.cameras.values():
            if runtime.worker is not None:
                runtime.worker.stop()
        finished = True
        for runtime in self.cameras.values():
            remaining = max(0.1, deadline - time.monotonic() - 0.2)
            finished &= runtime.stream.close(timeout=remaining)
        if not finished:
            log.error("some recorders did not finish within %.0f s", timeout)
        self.left_running = join_workers(min(WORKER_JOIN, max(0.1, deadline - time.monotonic())))
        for name in self.left_running:
            log.warning("camera thread %s is still inside a connection attempt", name)
        if self.mqtt is not None:
            self.mqtt.stop()
        self.storage.close()
        return finished

    # -- main loop -----------------------------------------------------------------------------

    def serve(
        self, *, every: Callable[[], None] | None = None, duration: float | None = None
    ) -> int:
        """Run until SIGTERM/SIGINT (or ``duration`` seconds); ``every`` runs once a second.

        SIGHUP reloads the configuration. Under systemd: READY=1 once storage recovery is done
        and every camera had its first connection attempt, STATUS= a one-line summary, and
        WATCHDOG=1 only while every worker is alive and making progress.
        """

        def request_stop(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s: stopping", signal.Signals(signum).name)
            self._stop.set()

        def request_reload(_signum: int, _frame: FrameType | None) -> None:
            self._reload.set()

        handlers: dict[signal.Signals, Callable[[int, FrameType | None], None]] = {
            signal.SIGTERM: request_stop,
            signal.SIGINT: request_stop,
            signal.SIGHUP: request_reload,
        }
        previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
        try:
            self.wait_first_attempts(FIRST_ATTEMPT_WAIT)
            self.notifier.ready(summary(self.snapshot()))
            self._loop(every, duration)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.notifier.stopping()
        started = time.monotonic()
        clean = self.stop()
        log.info("stopped in %.1f s", time.monotonic() - started)
        return 0 if clean else 1

    def _loop(self, every: Callable[[], None] | None, duration: float | None) -> None:
        end = None if duration is None else time.monotonic() + duration
        interval = self.notifier.watchdog_interval
        tick = min(1.0, interval) if interval else 1.0
        # Stuck for longer than systemd's whole watchdog timeout: that is a wedge.
        wedged_after = max(MIN_WEDGED_AFTER, 2 * interval) if interval else WEDGED_AFTER
        last_status = ""
        last_trim = time.monotonic()
        reported: set[str] = set()
        while not self._stop.wait(tick):
            if self._reload.is_set():
                self._reload.clear()
                self.reload()
                self.notifier.ready(summary(self.snapshot()))
            if every is not None:
                every()
            found = problems(self, wedged_after=wedged_after)
            for problem in set(found) - reported:
                log.error("watchdog: %s; not reporting healthy to systemd", problem)
            reported = set(found)
            if not found:
                self.notifier.watchdog()
            status = summary(self.snapshot())
            if status != last_status:
                self.notifier.status(status)
                last_status = status
            if time.monotonic() - last_trim >= TRIM_EVERY:
                last_trim = time.monotonic()
                trim()
            if end is not None and time.monotonic() >= end:
                break
