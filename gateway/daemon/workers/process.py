"""A camera's worker process: its whole packet path, and its end of the channel.

Forked by the fork server with everything imported. The main thread answers the supervisor's
commands and reports the camera's status once a second (at once when something significant
changes); the pull, recorder and forward run on their own threads as they did in one process.
The process caps its own memory (``RLIMIT_DATA``) and every FFmpeg allocation, so a camera that
announces or sends absurd sizes fails its own session, and the supervisor kills a worker that
wedges anyway.
"""

from __future__ import annotations

import logging
import pickle
import resource
import signal
import socket
import threading
import time
from typing import Any, cast

from gateway.config import CameraConfig
from gateway.daemon.workers.channel import Channel, ChannelClosedError, ChannelError
from gateway.daemon.workers.integrity import WorkerIntegrity, tamper_report
from gateway.daemon.workers.messages import (
    UP_EVENTS,
    CameraReport,
    Event,
    ForwardReport,
    ForwardStart,
    ForwardStop,
    ForwardStopped,
    Progress,
    RecorderReport,
    Relearn,
    Status,
    Stop,
    Stopped,
    StorageState,
    TakeSnapshot,
    WorkerSettings,
    encode_up,
)
from gateway.daemon.workers.pipeline import CameraRuntime
from gateway.daemon.workers.storage import WorkerStorage
from gateway.host.threads import name_process
from gateway.media.ffmpeg import limit_allocations
from gateway.push.publisher import PushUrl
from gateway.ratelimit import RateLimitedLog
from gateway.redact import register_secret
from gateway.telemetry.events import EventKind, WorkerEventKind
from gateway.units import format_size

__all__ = ["REPORT_EVERY", "STOP_BUDGET", "run_worker"]

log = logging.getLogger(__name__)
_unsent = RateLimitedLog(log, "%d more messages not sent to the supervisor in the last minute")

REPORT_EVERY = 1.0
"""Seconds between status reports; the supervisor counts a worker silent for 5 s as wedged."""
POLL = 0.5
"""Seconds between checks for a significant change to report at once."""
MESSAGE_WAIT = 30.0
"""Longest a segment or event message waits for the supervisor to read."""
STOP_BUDGET = 4.0
"""Seconds a worker gives its recorder to finish the open segment when asked to stop (the
daemon's whole stop takes at most 5 s)."""


def run_worker(sock: socket.socket, camera: CameraConfig, settings: WorkerSettings) -> int:
    """The worker's main: returns its exit status."""
    channel = Channel(sock)
    threading.current_thread().name = f"{camera.id}/worker"
    name_process(f"cgw:{camera.id}")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when cameras stop
    _register_secrets(camera)
    _limit_memory(camera.id, settings.memory_max)
    limit_allocations()
    return CameraProcess(channel, camera, settings).run()


def _register_secrets(camera: CameraConfig) -> None:
    if camera.password is not None:
        register_secret(camera.password.get_secret_value())


def _limit_memory(camera_id: str, limit: int) -> None:
    try:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    except (OSError, ValueError) as exc:
        log.warning(
            "camera %s: cannot cap the worker's memory at %s (%s); the supervisor's check of "
            "its resident memory still applies",
            camera_id,
            format_size(limit),
            exc,
        )


class _Events:
    """The camera's events go up the channel; the supervisor raises them on its bus."""

    def __init__(self, process: CameraProcess) -> None:
        self._process = process

    def emit(self, kind: EventKind, *, camera: str | None = None, **fields: Any) -> None:
        if kind in UP_EVENTS:  # the worker's own code raises only these
            self._process.send(Event(event=cast(WorkerEventKind, kind), fields=fields))
        else:
            log.error("camera worker: event %s is not one a worker raises; dropped", kind)


class CameraProcess:
    def __init__(self, channel: Channel, camera: CameraConfig, settings: WorkerSettings) -> None:
        self.channel = channel
        self.camera = camera
        self.settings = settings
        self.storage = WorkerStorage(self.send, settings.storage_root, settings.segment_max_bytes)
        self.runtime = CameraRuntime(
            camera,
            storage=self.storage,
            segment_duration=settings.segment_duration,
            forwarded=settings.forwarded,
            events=_Events(self),
            max_bitrate=settings.max_bitrate,
            analysis=settings.analysis,
            on_tamper=lambda transition: self.send(self.integrity.changed(transition)),
        )
        self.integrity = WorkerIntegrity(camera, settings.analysis, self.runtime)
        self._stop = threading.Event()
        self._supervisor_gone = False

    def send(self, message: Any) -> None:
        """Tell the supervisor. A status report does not wait (the next one follows within a
        second); anything else waits for room as long as a segment takes to matter, and is
        dropped with a log line if the supervisor still does not read: its file stays on disk
        and the next start's reconciliation indexes it. Only a closed channel ends the worker."""
        if self._supervisor_gone:
            return
        report = isinstance(message, Status)
        try:
            sent = self.channel.send(encode_up(message), 0 if report else MESSAGE_WAIT)
        except ChannelClosedError:
            self._supervisor_gone = True
            self._stop.set()
            return
        except ChannelError as exc:
            log.error("camera %s: message not sent: %s", self.camera.id, exc)
            return
        if not sent and not report:
            _unsent.log(
                "camera %s: the supervisor did not read for %.0f s; %s not sent",
                self.camera.id,
                MESSAGE_WAIT,
                type(message).__name__,
            )

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self._stop.set())
        self.runtime.start()
        self.send(self.report())
        next_report = time.monotonic() + REPORT_EVERY
        last = self._significant()
        while not self._stop.is_set():
            try:
                data = self.channel.recv(POLL)
            except ChannelClosedError:
                self._supervisor_gone = True
                break
            except ChannelError as exc:
                log.error("camera %s: bad message from the supervisor: %s", self.camera.id, exc)
                continue
            if data is not None:
                # From the supervisor, our parent (only the way down is pickled).
                self._handle(pickle.loads(data))  # noqa: S301
            now = time.monotonic()
            significant = self._significant()
            if now >= next_report or significant != last:
                self.send(self.report())
                next_report, last = now + REPORT_EVERY, significant
        if self._supervisor_gone:
            # The supervisor died (a crash, a SIGKILL): end at once, as the SIGKILL its death
            # sends us would. The segment being written stays a .part, which the next start
            # repairs; finishing it here would race with that start.
            log.warning("camera %s: the supervisor has gone; worker ending", self.camera.id)
            return 1
        self.runtime.stop(timeout=STOP_BUDGET)
        self.send(self.report())
        self.send(Stopped())
        return 0

    def _handle(self, message: object) -> None:
        if isinstance(message, StorageState):
            self.storage.update(message)
        elif isinstance(message, ForwardStart):
            password = PushUrl.parse(message.target.push_url).password
            if password:
                register_secret(password)
            self.runtime.start_forward(message.session, message.target, message.queue)
        elif isinstance(message, ForwardStop):
            totals = self.runtime.stop_forward()
            self.send(
                ForwardStopped(
                    session=message.session,
                    bytes_sent=totals.bytes_sent,
                    dropped_frames=totals.dropped_frames,
                    reconnects=totals.reconnects,
                )
            )
        elif isinstance(message, Relearn):
            if self.runtime.watch is not None:
                self.runtime.watch.relearn()
        elif isinstance(message, TakeSnapshot):
            for piece in self.integrity.snapshot(message.request):
                self.send(piece)
        elif isinstance(message, Stop):
            self._stop.set()

    def _significant(self) -> tuple[object, ...]:
        status = self.runtime.status
        recorder, forward = status.recorder, status.forward
        tamper = self.runtime.tamper
        return (
            status.state,
            status.error,
            recorder.recording,
            recorder.error,
            forward.state,
            forward.error,
            tamper.state,
            tamper.privacy,
            tamper.error,
        )

    def report(self) -> Status:
        runtime = self.runtime
        runtime.count_forward_drops()
        status, recorder, forward = runtime.status, runtime.status.recorder, runtime.status.forward
        worker = runtime.worker
        progress = Progress()
        if worker is not None:
            now = worker.progress()
            progress = Progress(
                opening_for=now.opening_for,
                connected_for=now.connected_for,
                picture_age=now.picture_age,
                attempted=worker.first_attempt.is_set(),
                threads_alive=worker.alive or worker.stopping,
            )
        readers = runtime.readers()
        progress = progress.model_copy(
            update={"threads_alive": progress.threads_alive and all(r.alive for r in readers)}
        )
        return Status(
            camera=CameraReport(
                state=status.state,
                since=status.since,
                error=status.error,
                sessions=status.sessions,
                frames=status.frames,
                bytes_received=status.bytes_received,
                last_frame=status.last_frame_monotonic,
                codec=status.codec,
                width=status.width,
                height=status.height,
                fps=status.fps,
                bitrate=status.bitrate,
                timestamp_repairs=status.timestamp_repairs,
            ),
            recorder=RecorderReport(
                recording=recorder.recording,
                error=recorder.error,
                segments=recorder.segments,
                bytes_written=recorder.bytes_written,
                current_segment=recorder.current_segment,
                skipped_packets=recorder.skipped_packets,
                no_keyframe_cuts=recorder.no_keyframe_cuts,
                writing_bytes=self.storage.writing_bytes,
                stuck_for=max((r.stuck_for() for r in readers if r.name == "recorder"), default=0),
            ),
            forward=ForwardReport(
                state=forward.state,
                error=forward.error,
                since=forward.since,
                bytes_sent=forward.bytes_sent,
                dropped_frames=forward.dropped_frames,
                reconnects=forward.reconnects,
            ),
            tamper=tamper_report(runtime.tamper),
            dropped={r.name: r.stats.dropped_frames for r in readers},
            progress=progress,
        )
