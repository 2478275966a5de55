"""Longer than 400 lines: the supervisor's wiring is one object whose start, commands, views,
reload and stop share its state; the work itself is done by the packages it wires.

The daemon's supervisor process: wires storage, the camera workers, forwards, the control
socket and MQTT; runs the main loop (readiness, status and watchdog for systemd, reload on
SIGHUP); stops everything cleanly.

Each camera runs in its own worker process (:mod:`gateway.daemon.workers`), whose threads pull
it, fan it out and record or forward it (:mod:`gateway.daemon.workers.pipeline`); this process
keeps the control plane and a mirror of every camera's status.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from gateway import __version__
from gateway.clock import clock_synchronized
from gateway.config import CameraConfig, Config, ConfigError, config_warnings, load_config
from gateway.daemon.control import ControlServer, Peer
from gateway.daemon.health import MIN_WEDGED_AFTER, WEDGED_AFTER, Watch, problems
from gateway.daemon.integrity_commands import CONTROL_COMMANDS, IntegrityCommands
from gateway.daemon.systemd import Notifier
from gateway.daemon.workers.handle import WorkerHandle
from gateway.daemon.workers.messages import WorkerSettings
from gateway.daemon.workers.supervisor import Supervisor
from gateway.evidence.box import Integrity, config_digest
from gateway.evidence.child import run_child_export
from gateway.forward.commands import CommandError, decode_mqtt_command, parse_command
from gateway.forward.manager import ForwardManager
from gateway.host.memory import trim
from gateway.integrity.audit import AuditError
from gateway.integrity.journal import JournalError
from gateway.integrity.keys import SigningKeyError
from gateway.storage.retention import RetentionPolicy
from gateway.storage.store import STUCK_AFTER, Storage
from gateway.telemetry.events import EventBus
from gateway.telemetry.metrics import MetricsSnapshot, serve_metrics
from gateway.telemetry.mqtt import MqttPublisher
from gateway.telemetry.mqtt.publisher import MqttView
from gateway.telemetry.statusview import status_document, summary
from gateway.text import excerpt

__all__ = ["STOP_TIMEOUT", "Gateway"]

log = logging.getLogger(__name__)

STOP_TIMEOUT = 5.0
"""Seconds within which a stop finalises every open segment."""
FIRST_ATTEMPT_WAIT = 10.0
"""Longest wait for every camera's first connection attempt before declaring readiness."""
TRIM_EVERY = 60.0
"""Seconds between returns of freed memory to the system."""
_RESTART_ONLY = (
    "site_id",
    "storage",
    "metrics",
    "control",
    "audit",
    "mqtt",
    "uplink",
    "workers",
    "analysis",
)


class Gateway:
    """Start with :meth:`start`, stop with :meth:`stop` (or run :meth:`serve` until a signal)."""

    def __init__(self, config: Config, *, config_path: Path | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.events = EventBus()
        storage = config.storage
        self.integrity = Integrity.of(config)
        self.storage = Storage(
            storage.path,
            RetentionPolicy(
                quota=storage.quota, max_age=storage.max_age, min_free=storage.min_free
            ),
            events=self.events,
            audit=self.integrity.audit,
            sealer=self.integrity.sealer,
            holds=self.integrity.holds,
        )
        self.workers = Supervisor(
            self.storage,
            self.events,
            verbose=logging.getLogger().isEnabledFor(logging.DEBUG),
            site=config.site_id,
            journal=self._journal,
        )
        self.cameras: dict[str, WorkerHandle] = {}
        self.watch_commands = IntegrityCommands(
            site_id=config.site_id,
            cameras=self.cameras,
            audit=self.integrity.audit,
            events=self.events,
        )
        self.forwards: ForwardManager | None = None
        self.control: ControlServer | None = None
        self.mqtt: MqttPublisher | None = None
        self.notifier = Notifier()
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._storage_stuck = False
        self._export_lock = threading.Lock()

    # -- start ---------------------------------------------------------------------------------

    def start(self, *, metrics: bool = True) -> None:
        self.workers.start()  # first: the fork server is exec'd before any thread exists
        self.storage.recorded_cameras = sum(1 for c in self.config.cameras if c.record)
        self._journal_start()
        self.storage.open()
        self.storage.start()
        if metrics:
            listen = self.config.metrics
            serve_metrics(listen.host, listen.port, self.snapshot)
        for camera in self.config.cameras:
            self.cameras[camera.id] = self.workers.add(camera, self._settings(camera, self.config))
        self.forwards = ForwardManager(
            site_id=self.config.site_id,
            uplink=self.config.uplink,
            cameras={c: h.camera for c, h in self.cameras.items()},
            statuses={c: h.status.forward for c, h in self.cameras.items()},
            links=dict(self.cameras),
            audit=self.integrity.audit,
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

    def _journal_start(self) -> None:
        """Make the signing key at first start; journal the start and the configuration. Neither
        a broken key nor an unwritable journal stops recording: both are reported."""
        keys = self.integrity.keys
        try:
            signer, created = keys.ensure()
        except SigningKeyError as exc:
            log.error("%s: exports and sealing are unavailable until it is fixed", exc.reason)
        else:
            log.info("signing key %s (%s)", signer.fingerprint, "created" if created else "loaded")
            if created:
                self._journal("key_created", fingerprint=signer.fingerprint)
        self._journal(
            "daemon_started",
            version=__version__,
            site=self.config.site_id,
            config_sha256=config_digest(self.config),
        )

    def _journal(self, event: str, **fields: Any) -> None:
        """An entry about the daemon itself: a failure is logged, the daemon goes on."""
        try:
            self.integrity.audit.append(event, **fields)
        except AuditError as exc:
            log.error("audit journal: %s not recorded: %s", event, exc)

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
            on_snapshot=self.watch_commands.mqtt_snapshot,
            on_relearn=self.watch_commands.mqtt_relearn,
        )
        self.mqtt.start()

    def _settings(self, camera: CameraConfig, config: Config) -> WorkerSettings:
        return WorkerSettings(
            site_id=config.site_id,
            storage_root=self.storage.root,
            segment_duration=config.storage.segment_duration,
            segment_max_bytes=self.storage.segment_max_bytes,
            memory_max=config.workers.memory_max,
            max_bitrate=camera.max_bitrate,
            forwarded=config.uplink is not None and camera.forward != "off",
            analysis=config.analysis,
        )

    def watched(self) -> list[Watch]:
        """The daemon's own long-lived threads, for the watchdog."""
        workers, storage = self.workers, self.storage
        watched = [
            Watch("storage", lambda: storage.alive),
            Watch("camera supervision", lambda: workers.alive, workers.stuck_for),
        ]
        if (forwards := self.forwards) is not None:
            watched.append(Watch("forward sessions", lambda: forwards.alive))
        if (control := self.control) is not None:
            watched.append(Watch("control socket", lambda: control.alive))
        if (mqtt := self.mqtt) is not None:
            watched.append(Watch("MQTT", lambda: mqtt.alive))
        return watched

    def wait_first_attempts(self, timeout: float) -> None:
        """Wait until every camera tried once, the timeout passes, or a stop is requested."""
        deadline = time.monotonic() + timeout
        for handle in list(self.cameras.values()):
            while not handle.first_attempt.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    return
                handle.first_attempt.wait(min(0.1, remaining))

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
        if command in CONTROL_COMMANDS:
            return self.watch_commands.control(request, peer)
        if command == "evidence":
            via = f"command line, {peer.describe()}"
            if request.get("action") == "export":
                return self._export(request, via)
            from gateway.evidence.desk import EvidenceDesk

            return EvidenceDesk(self.config, self.storage.index, self.integrity).handle(
                request, via=via
            )
        return {"ok": False, "message": f"unknown command {excerpt(command)}"}

    def _export(self, request: dict[str, Any], via: str) -> dict[str, Any]:
        """Run an export in a child process of its own, one at a time: it reads gigabytes and
        loads PyAV, which must cost the supervision of the cameras nothing (no lock, no memory
        of this process). The child reads the index, which WAL lets it do while we write."""
        if self.config_path is None:
            return {"ok": False, "message": "this daemon was not started from a file: no export"}
        if not self._export_lock.acquire(blocking=False):
            return {"ok": False, "message": "an export is already running; try again once done"}
        try:
            return run_child_export(self.config_path, request, via)
        finally:
            self._export_lock.release()

    def _mqtt_command(self, camera_id: str, payload: bytes) -> dict[str, Any]:
        """``P/cameras/<id>/forward/set``: its answer (``ok``, ``message``, ``session``)."""
        if self.forwards is None:
            return {"ok": False, "message": "the gateway is starting"}
        try:
            command = decode_mqtt_command(camera_id, payload, origin="mqtt")
        except CommandError as exc:
            self.forwards.rejected(camera_id, exc.reason, origin="mqtt")
            return {"ok": False, "message": exc.reason}
        return self.forwards.request(command).as_dict()

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
            cameras=[handle.status for handle in self.cameras.values()],
            storage=self.storage.usage,
            max_age=self.config.storage.max_age,
            mqtt_connected=None if self.mqtt is None else self.mqtt.connected,
            clock_synchronized=clock_synchronized(),
        )

    def _mqtt_view(self) -> MqttView:
        return MqttView(
            uptime=time.monotonic() - self.started,
            cameras=[handle.status for handle in self.cameras.values()],
            storage=self.storage.usage,
            clock_synchronized=clock_synchronized(),
            seal=self.seal_heads(),
        )

    def seal_heads(self) -> dict[str, Any] | None:
        """What ``P/seal`` publishes; None when the journals cannot be read."""
        integrity = self.integrity
        try:
            fingerprint: str | None = integrity.keys.signer().fingerprint
        except SigningKeyError:
            fingerprint = None
        try:
            return {
                "key_fingerprint": fingerprint,
                "audit": integrity.audit.head().as_dict(),
                "cameras": {c: h.as_dict() for c, h in integrity.sealer.heads().items()},
            }
        except (JournalError, OSError) as exc:
            log.debug("seal heads unavailable: %s", exc)
            return None

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
        for warning in config_warnings(new):
            log.warning("%s", warning)
        for section in _RESTART_ONLY:
            if getattr(new, section) != getattr(self.config, section):
                log.warning("reload: %s changed; that takes effect at the next restart", section)
        old = {c.id: c for c in self.config.cameras}
        wanted = {c.id: c for c in new.cameras}
        effective = self.config.model_copy(update={"cameras": new.cameras, "minimum": new.minimum})
        assert self.forwards is not None  # noqa: S101 - for mypy: start() set it
        for camera_id in old.keys() - wanted.keys():
            self.forwards.set_camera(camera_id, None, reason="camera_removed")
            self.cameras.pop(camera_id)
            self.workers.remove(camera_id, timeout=STOP_TIMEOUT)
            log.info("reload: camera %s removed", camera_id)
        self.storage.recorded_cameras = sum(1 for c in new.cameras if c.record)
        for camera_id, camera in wanted.items():
            if camera_id in old and old[camera_id] == camera:
                continue
            if camera_id in old and old[camera_id] == camera.model_copy(
                update={"minimum": old[camera_id].minimum}
            ):
                self.cameras[camera_id].judge_against(camera)  # no need to touch its worker
                log.info("reload: camera %s: minima changed", camera_id)
                continue
            if camera_id in old:
                self.forwards.set_camera(camera_id, None, reason="camera_changed")
                self.cameras.pop(camera_id)
                self.workers.remove(camera_id, timeout=STOP_TIMEOUT)
            handle = self.workers.add(camera, self._settings(camera, effective))
            self.cameras[camera_id] = handle
            self.forwards.set_camera(camera_id, camera, handle.status.forward, handle)
            log.info("reload: camera %s %s", camera_id, "changed" if camera_id in old else "added")
        self.config = effective
        self._journal("config_reloaded", config_sha256=config_digest(effective))
        return True

    # -- stop ----------------------------------------------------------------------------------

    def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """Stop the cameras (each worker finalises its segment, or is killed at the deadline),
        release the storage. True if every worker finished in time."""
        deadline = time.monotonic() + timeout
        if self.forwards is not None:
            self.forwards.stop_all("shutdown")
        if self.control is not None:
            self.control.stop()
        finished = self.workers.stop(max(0.5, deadline - time.monotonic()))
        if not finished:
            log.error("some cameras did not finish their segment within %.0f s", timeout)
        if self.mqtt is not None:
            self.mqtt.stop()
        self.storage.close()
        self._journal("daemon_stopped", clean=finished)
        return finished

    # -- main loop -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def signals(self) -> Iterator[None]:
        """SIGTERM/SIGINT request a stop and SIGHUP a reload while this is entered.

        Entered before :meth:`start`, so that a stop asked for during a long start-up (storage
        recovery, the journal's check) is a clean stop, not the default handler's death.
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
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def serve(
        self, *, every: Callable[[], None] | None = None, duration: float | None = None
    ) -> int:
        """Run until a stop is requested (see :meth:`signals`) or ``duration`` seconds pass;
        ``every`` runs once a second.

        Under systemd: READY=1 once storage recovery is done and every camera had its first
        connection attempt, STATUS= a one-line summary, and WATCHDOG=1 only while every worker
        is alive and making progress.
        """
        self.wait_first_attempts(FIRST_ATTEMPT_WAIT)
        if not self._stop.is_set():
            self.notifier.ready(summary(self.snapshot()))
            self._loop(every, duration)
        self.notifier.stopping()
        started = time.monotonic()
        clean = self.stop()
        log.info("stopped in %.1f s", time.monotonic() - started)
        return 0 if clean else 1

    def _watch_storage(self) -> None:
        """A disk that stops answering holds the storage thread: say so once, loudly. The
        daemon goes on (live forwarding does not need the disk), and so does systemd's watchdog."""
        stuck = self.storage.stuck_for()
        if stuck > STUCK_AFTER and not self._storage_stuck:
            self._storage_stuck = True
            log.error("storage %s: not answering for %.0f s", self.storage.root, stuck)
            self.events.emit("storage_error", reason=f"storage not answering for {stuck:.0f} s")
        elif stuck <= STUCK_AFTER and self._storage_stuck:
            self._storage_stuck = False
            log.info("storage %s answers again", self.storage.root)

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
            self._watch_storage()
            found = problems(self.watched(), wedged_after=wedged_after)
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
