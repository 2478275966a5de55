"""Longer than 400 lines: the supervision loop and the rules it applies to each worker (when
to kill, restart, deprioritise) are one thread's state and read best together; a camera's
handle and mirror are in :mod:`~gateway.daemon.workers.handle`, the /proc reads in
:mod:`gateway.host.proc`.

Watching the camera workers: start them, mirror their status, restart the ones that fail.

One thread (``gateway:workers``) owns the fork server, every worker's channel and pidfd, and
the rules below; other threads only ask it for things (add, remove, stop) and read the mirrors.
A worker is killed (SIGKILL: a wedged process would not honour anything gentler) and restarted
with backoff when:

- it says nothing for :data:`NOT_RESPONDING` seconds;
- its connection attempt lasts past :data:`OPEN_LIMIT` (FFmpeg's own open timeout plus 2 s);
- it is connected but no picture came for :data:`NO_PICTURE_LIMIT` seconds (a camera that
  keeps sending bytes that never make a picture holds FFmpeg's read forever);
- its resident memory passes its cap, or one of its threads died, or it breaks the protocol.

Its camera then shows ``offline`` with the reason; while it is only late, ``stalled`` (status,
MQTT and metrics derive it from the age of the last frame) with ``no picture for N s``. The
daemon's own watchdog never depends on a worker: a bad camera restarts its worker, never the
daemon. The ``.part`` a dead worker leaves is repaired and indexed at once.

Counters in the mirror are the sum over the camera's successive workers, so metrics never go
back when a worker restarts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import selectors
import signal
import threading
import time
from pathlib import Path

from pydantic import ValidationError

from gateway.backoff import Backoff
from gateway.config import CameraConfig
from gateway.daemon.workers.channel import Channel, ChannelClosedError, ChannelError, channel_pair
from gateway.daemon.workers.forkserver import ForkServer, ForkServerError, exit_reason
from gateway.daemon.workers.handle import WorkerHandle, WorkerProcess
from gateway.daemon.workers.messages import (
    UP_EVENTS,
    Event,
    ForwardStopped,
    SegmentAborted,
    SegmentFinished,
    SegmentOpened,
    SnapshotFailed,
    SnapshotPart,
    Status,
    Stop,
    Stopped,
    StorageState,
    TamperChanged,
    WorkerSettings,
    decode_up,
)
from gateway.daemon.workers.tamper import Journal, announce_change, announce_gate
from gateway.host.proc import CLOCK_TICKS, cpu_ticks, exited, resident_bytes
from gateway.media.fmp4 import Fmp4Error, scan
from gateway.source.timeouts import OPEN_TIMEOUT
from gateway.storage.naming import parse_segment_path
from gateway.storage.salvage import describe
from gateway.storage.store import Storage
from gateway.telemetry.compliance import announce
from gateway.telemetry.events import EventBus
from gateway.telemetry.state import STALLED_AFTER, camera_state
from gateway.units import format_size

__all__ = ["NOT_RESPONDING", "NO_PICTURE_LIMIT", "OPEN_LIMIT", "Supervisor"]

log = logging.getLogger(__name__)

NOT_RESPONDING = 5.0
"""Seconds without a message from a worker (it reports every second) before it is killed."""
OPEN_LIMIT = OPEN_TIMEOUT + 2.0
NO_PICTURE_LIMIT = 6.0
"""Seconds connected without a picture before the worker is killed. FFmpeg ends a silent
session by itself after at most 4 s; this catches the camera that keeps sending bytes."""
HEALTHY_FOR = 60.0
"""A worker that ran this long without failing resets its restart backoff."""
TICK = 0.5
MEMORY_EVERY = 1.0
STALL = 2.0
"""Seconds late the supervision loop itself may come round before it stops judging workers by
their silence for that turn: under a CPU overload the supervisor is late too, and a worker's
silence is then the supervisor's own."""
BATCH = 64
"""Messages read from one worker per turn, so that a chatty worker cannot starve the others."""
CPU_HOG = 0.5
"""Share of one core above which a worker counts as hogging: a 1080p camera's worker uses about
1 %, a 4K one a few percent."""
CPU_HOG_FOR = 3
"""Consecutive seconds of hogging before the worker is deprioritised."""


class Supervisor:
    """Starts with :meth:`start` (the fork server's imports take about a second)."""

    def __init__(
        self,
        storage: Storage,
        events: EventBus,
        *,
        verbose: bool = False,
        site: str | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.storage = storage
        self.events = events
        self.journal: Journal = journal or (lambda _event, **_fields: None)
        """Writes the integrity changes and forward suspensions to the audit journal."""
        self.forkserver = ForkServer(verbose=verbose, site=site)
        self.handles: dict[str, WorkerHandle] = {}
        self._lock = threading.Lock()
        self._by_pid: dict[int, WorkerHandle] = {}
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gateway:workers", daemon=True)
        self._storage_state: StorageState | None = None
        self._forkserver_backoff = Backoff(initial=1.0, maximum=30.0)
        self._forkserver_retry_at = 0.0
        self.beat = time.monotonic()
        """When the supervision loop last went round (for the daemon's watchdog)."""
        self._turned = time.monotonic()

    # -- life cycle ----------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stuck_for(self) -> float:
        """Seconds since the supervision loop last went round."""
        return time.monotonic() - self.beat

    def start(self) -> None:
        self._start_forkserver()
        self._thread.start()

    def add(self, camera: CameraConfig, settings: WorkerSettings) -> WorkerHandle:
        handle = WorkerHandle(camera, settings)
        with self._lock:
            self.handles[camera.id] = handle
        self._wake()
        return handle

    def remove(self, camera_id: str, timeout: float = 5.0) -> bool:
        """Stop the camera's worker (asked, then SIGTERM, then SIGKILL) and forget the camera;
        True if it finished its segment in time."""
        with self._lock:
            handle = self.handles.get(camera_id)
        if handle is None:
            return True
        handle.stop_timeout = timeout
        handle.wanted = False
        self._wake()
        handle.ended.wait(timeout + 2.0)
        return handle.ended.is_set()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop every worker at once, each within ``timeout``; then the fork server."""
        with self._lock:
            handles = list(self.handles.values())
        for handle in handles:
            handle.stop_timeout = timeout
            handle.wanted = False
        self._wake()
        deadline = time.monotonic() + timeout + 2.0
        clean = all(h.ended.wait(max(0.0, deadline - time.monotonic())) for h in handles)
        self._stop.set()
        self._wake()
        self._thread.join(2.0)
        self.forkserver.close()
        return clean

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    # -- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self.beat = time.monotonic()
            try:
                self._turn()
            except Exception:  # the loop must survive any bug: it is every camera's keeper
                log.exception("camera supervision failed; continuing")
                time.sleep(TICK)

    def _turn(self) -> None:
        events = self._selector.select(TICK)
        self._excuse_own_stall()
        for key, _ in events:
            if key.data is None:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._wake_r, 4096):
                        pass
            elif key.data == "forkserver":
                self._forkserver_news()
            else:
                self._read(key.data)
        now = time.monotonic()
        if not self.forkserver.alive and now >= self._forkserver_retry_at:
            self._forkserver_died("the fork server is not running")
            self._start_forkserver()
        state = self._current_storage_state()
        with self._lock:
            handles = list(self.handles.values())
        for handle in handles:
            self._tend(handle, now, state)
        self._storage_state = state
        self._turned = time.monotonic()

    def _excuse_own_stall(self) -> None:
        """When this loop itself came round late (the box overloaded, the supervisor starved of
        CPU like everyone), the workers' silence over that time is ours, not theirs: it does not
        count towards their liveness rules."""
        now = time.monotonic()
        stall = now - self._turned - TICK
        if stall <= STALL:
            return
        log.warning("camera supervision held up for %.1f s (the box is overloaded?)", stall)
        with self._lock:
            handles = list(self.handles.values())
        for handle in handles:
            process = handle.process
            if process is not None:
                process.last_message = min(now, process.last_message + stall)
                process.report_at = min(now, process.report_at + stall)

    # -- fork server ---------------------------------------------------------------------------

    def _start_forkserver(self) -> None:
        sock = self.forkserver.sock
        if sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)
        try:
            self.forkserver.close()
            self.forkserver.start()
        except ForkServerError as exc:
            delay = self._forkserver_backoff.next()
            self._forkserver_retry_at = time.monotonic() + delay
            log.error("%s; retrying in %.0f s", exc, delay)
            return
        self._forkserver_backoff.reset()
        assert self.forkserver.sock is not None  # noqa: S101 - for mypy: start() set it
        self._selector.register(self.forkserver.sock, selectors.EVENT_READ, "forkserver")

    def _forkserver_news(self) -> None:
        try:
            exits = self.forkserver.exits()
        except ForkServerError as exc:
            sock = self.forkserver.sock
            if sock is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(sock)
            log.error("%s: every camera worker went with it; restarting them", exc)
            self._forkserver_died("the fork server died")
            self.forkserver.close()
            return
        for pid, status in exits:
            handle = self._by_pid.get(pid)
            if handle is not None:
                self._ended(handle, exit_reason(status))

    def _forkserver_died(self, why: str) -> None:
        for handle in list(self._by_pid.values()):
            self._ended(handle, why)

    # -- one worker ----------------------------------------------------------------------------

    def _tend(self, handle: WorkerHandle, now: float, state: StorageState) -> None:
        self._judge(handle, now)
        process = handle.process
        if process is None:
            if not handle.wanted:
                with self._lock:
                    if self.handles.get(handle.camera.id) is handle:
                        del self.handles[handle.camera.id]
                handle.ended.set()
            elif handle.enabled and now >= handle.restart_at and self.forkserver.alive:
                self._spawn(handle, state)
            return
        if state != self._storage_state:
            process.send(state)
        if not handle.wanted and not process.stopping:
            process.stopping = True
            process.stop_deadline = now + handle.stop_timeout
            process.send(Stop())
        if process.stopping:
            if now > process.stop_deadline - 1.0 and not process.termed:
                process.termed = True
                process.signal(signal.SIGTERM)
            if now > process.stop_deadline and not process.killed:
                process.killed = True
                log.warning("camera %s: worker did not stop in time; killed", handle.camera.id)
                process.signal(signal.SIGKILL)
            return
        if process.killed:
            return
        reason = self._verdict(handle, process, now)
        if reason is not None:
            self._kill(handle, process, reason)
        else:
            self._describe_delay(handle, process, now)

    def _judge(self, handle: WorkerHandle, now: float) -> None:
        """The camera against its legal minima, from the mirror, each turn."""
        status = handle.status
        online = camera_state(status, time.time()) == "online"
        changes = handle.compliance.observe(
            now, online=online, fps=status.fps, width=status.width, height=status.height
        )
        for change in changes:
            announce(handle.camera.id, change, self.events)

    def _verdict(self, handle: WorkerHandle, process: WorkerProcess, now: float) -> str | None:
        """Why the worker must be killed now, or None."""
        silent = now - process.last_message
        if not process.channel_open and exited(process.pidfd):
            return None  # dead already: the fork server's note will say how
        if silent > NOT_RESPONDING or (not process.channel_open and silent > 1.0):
            return f"its worker stopped responding ({silent:.0f} s without a word)"
        report = process.report
        if report is not None:
            progress, lag = report.progress, now - process.report_at
            if progress.opening_for and progress.opening_for + lag > OPEN_LIMIT:
                return (
                    f"stuck in a connection attempt for {progress.opening_for + lag:.0f} s "
                    f"(the open timeout is {OPEN_TIMEOUT:g} s)"
                )
            age = _picture_age(report, lag)
            if age is not None and age > NO_PICTURE_LIMIT:
                return f"connected but no picture for {age:.0f} s"
            if not progress.threads_alive:
                return "a thread of its worker has died"
        if now >= process.next_memory:
            process.next_memory = now + MEMORY_EVERY
            resident = resident_bytes(process.pid)
            handle.status.worker.resident_bytes = resident
            if resident > handle.settings.memory_max:
                return (
                    f"its worker uses {format_size(resident)} of memory, over its cap of "
                    f"{format_size(handle.settings.memory_max)}"
                )
            self._watch_cpu(handle, process, now)
        return None

    def _watch_cpu(self, handle: WorkerHandle, process: WorkerProcess, now: float) -> None:
        """A worker that keeps a core busy (a camera sending an endless header line makes
        FFmpeg read it a byte at a time) is moved to the lowest priority: it then runs only on
        what the other cameras leave, and cannot starve them or the daemon."""
        ticks = cpu_ticks(process.pid)
        if process.cpu_at:
            share = (ticks - process.cpu_ticks) / CLOCK_TICKS / (now - process.cpu_at)
            handle.status.worker.cpu = share
            process.cpu_hot = process.cpu_hot + 1 if share > CPU_HOG else 0
            if process.cpu_hot >= CPU_HOG_FOR and not process.niced:
                process.niced = True
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, process.pid, 19)
                log.warning(
                    "camera %s: its worker keeps %.0f %% of a core busy; lowered to the least "
                    "priority so that it cannot starve the other cameras",
                    handle.camera.id,
                    100 * share,
                )
        process.cpu_ticks, process.cpu_at = ticks, now

    def _describe_delay(self, handle: WorkerHandle, process: WorkerProcess, now: float) -> None:
        """Say within seconds what a late camera is doing, before any rule fires."""
        report = process.report
        if report is None:
            return
        lag = now - process.report_at
        age = _picture_age(report, lag)
        status = handle.status
        if age is not None and age > STALLED_AFTER and status.error is None:
            status.error = f"no picture for {age:.0f} s"
        opening = report.progress.opening_for
        if opening and opening + lag > STALLED_AFTER + 1 and status.error is None:
            status.error = f"no answer to the connection attempt for {opening + lag:.0f} s"

    def _kill(self, handle: WorkerHandle, process: WorkerProcess, reason: str) -> None:
        process.kill_reason = reason
        process.killed = True
        handle.status.error = f"{reason}; worker restarting"
        process.signal(signal.SIGKILL)

    def _spawn(self, handle: WorkerHandle, state: StorageState) -> None:
        ours, theirs = channel_pair()
        try:
            spawned = self.forkserver.spawn(
                "gateway.daemon.workers.process:run_worker", theirs, handle.camera, handle.settings
            )
        except ForkServerError as exc:
            ours.close()
            log.error("camera %s: cannot start its worker: %s", handle.camera.id, exc)
            handle.restart_at = time.monotonic() + handle.backoff.next()
            return
        finally:
            theirs.close()
        now = time.monotonic()
        process = WorkerProcess(
            pid=spawned.pid,
            pidfd=spawned.pidfd,
            channel=Channel(ours),
            started=now,
            last_message=now,
        )
        handle.process = process
        self._by_pid[spawned.pid] = handle
        handle.status.worker.pid = spawned.pid
        handle.status.worker.started = time.time()
        self._selector.register(process.channel.fileno(), selectors.EVENT_READ, handle)
        process.send(state)
        command = handle.forward_command
        if command is not None:
            process.send(command)
        log.debug("camera %s: worker %d started", handle.camera.id, spawned.pid)

    def _read(self, handle: WorkerHandle) -> None:
        process = handle.process
        if process is None:
            return
        for _ in range(BATCH):
            try:
                data = process.channel.recv(0)
            except ChannelClosedError:
                self._close_channel(process)
                return
            except ChannelError as exc:
                self._kill(handle, process, f"its worker broke the protocol ({exc})")
                self._close_channel(process)
                return
            if data is None:
                return
            process.last_message = time.monotonic()
            try:
                message = decode_up(data)
                self._dispatch(handle, process, message)
            except (ValidationError, ValueError) as exc:
                detail = str(exc).splitlines()[0][:200]
                self._kill(handle, process, f"its worker broke the protocol ({detail})")
                self._close_channel(process)
                return

    def _close_channel(self, process: WorkerProcess) -> None:
        if process.channel_open:
            process.channel_open = False
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(process.channel.fileno())

    def _dispatch(self, handle: WorkerHandle, process: WorkerProcess, message: object) -> None:
        camera = handle.camera.id
        if isinstance(message, Status):
            process.report, process.report_at = message, process.last_message
            handle.apply(message)
            self.storage.writing(camera, message.recorder.writing_bytes)
            gate = handle.gate_forward()  # None without a session: the status shows it
            if gate is not None:
                session = handle.forward_session
                reason = handle.status.forward.suspended or "privacy masks back"
                announce_gate(
                    camera,
                    gate,
                    session=session,
                    reason=reason,
                    events=self.events,
                    journal=self._journal_later,
                )
        elif isinstance(message, TamperChanged):
            announce_change(camera, message, self.events, self._journal_later)
        elif isinstance(message, SnapshotPart | SnapshotFailed):
            handle.snapshots.arrived(message)
        elif isinstance(message, Event):
            if message.event in UP_EVENTS:
                self.events.emit(message.event, camera=camera, **message.fields)
        elif isinstance(message, SegmentOpened):
            path = self._own(handle, message.path, partial=True)
            self.storage.opened(camera, path, message.expected)
        elif isinstance(message, SegmentFinished):
            path = self._own(handle, message.path, partial=False)
            self.storage.closed(camera)
            finished = message
            self.storage.submit(lambda: self._index(handle, path, finished))
        elif isinstance(message, SegmentAborted):
            part = self._own(handle, message.path, partial=True)
            self.storage.closed(camera)
            self.storage.submit(lambda: self.storage.salvage(part))
        elif isinstance(message, ForwardStopped):
            handle.forward_replied(message)
        elif isinstance(message, Stopped):
            process.clean = True

    def _journal_later(self, event: str, **fields: object) -> None:
        """Journal on the storage thread: this loop never waits for a disk."""
        self.storage.submit(lambda: self.journal(event, **fields))

    def _own(self, handle: WorkerHandle, text: str, *, partial: bool) -> Path:
        """A segment path a worker named, if it is one of its own camera's; else ValueError."""
        path = Path(text)
        name = parse_segment_path(path)
        root = self.storage.root
        if (
            name is None
            or name.camera != handle.camera.id
            or name.partial != partial
            or path.parent.parent != root / handle.camera.id
            or ".." in path.parts
        ):
            raise ValueError(f"segment path outside camera {handle.camera.id}'s folder")
        return path

    def _index(self, handle: WorkerHandle, path: Path, message: SegmentFinished) -> None:
        """Index a finished segment from what the file itself holds, not what the worker said
        (on the storage thread: this reads the disk). The worker's hash is taken when it covers
        the whole file; otherwise sealing hashes the file."""
        try:
            found = describe(self.storage.root, path, scan(path), flags=frozenset(message.flags))
            if found is None:
                raise Fmp4Error("not a finished segment's name")
            info = dataclasses.replace(
                found,
                sha256=message.sha256 if message.bytes == found.bytes else None,
                clock_synced=message.clock_synced,
                ended=message.ended,
            )
        except (Fmp4Error, OSError) as exc:
            log.error(
                "camera %s: finished segment %s is unreadable: %s", handle.camera.id, path.name, exc
            )
            return
        self.storage.finished(info)

    def _ended(self, handle: WorkerHandle, how: str) -> None:
        """The worker's process is gone: fold its counters, salvage its segment, restart it."""
        process = handle.process
        if process is None:
            return
        handle.process = None
        self._by_pid.pop(process.pid, None)
        self._close_channel(process)
        process.channel.close()
        with contextlib.suppress(OSError):
            os.close(process.pidfd)
        camera = handle.camera.id
        handle.fold(process.report)
        part = self.storage.open_part(camera)
        self.storage.closed(camera)
        if part is not None:
            self.storage.submit(lambda: self._salvage(part))
        handle.status.worker.pid = None
        handle.first_attempt.set()
        now = time.monotonic()
        if not handle.wanted or (process.stopping and process.clean):
            if not process.clean:
                log.warning("camera %s: worker %s before finishing its segment", camera, how)
            handle.restart_at = now
            return
        why = process.kill_reason or f"its worker {how}"
        if now - process.started >= HEALTHY_FOR:
            handle.backoff.reset()
        delay = handle.backoff.next()
        handle.restart_at = now + delay
        status = handle.status
        status.worker.restarts += 1
        status.worker.last_restart = why
        was_online = status.state == "online"
        status.set_state("offline", f"{why}; worker restarted")
        log.error("camera %s: %s; restarting its worker in %.1f s", camera, why, delay)
        if was_online:
            self.events.emit("camera_offline", camera=camera, reason=why)
        self.events.emit("camera_worker_restarted", camera=camera, reason=why)

    def _salvage(self, part: Path) -> None:
        if part.exists():
            self.storage.salvage(part)

    def _current_storage_state(self) -> StorageState:
        return StorageState(
            error=self.storage.refusal(), segment_max_bytes=self.storage.segment_max_bytes
        )


def _picture_age(report: Status, lag: float) -> float | None:
    """Seconds the connected camera has gone without a picture, as of now."""
    progress = report.progress
    if not progress.connected_for:
        return None
    age = progress.picture_age if progress.picture_age is not None else progress.connected_for
    return age + lag
