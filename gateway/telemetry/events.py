"""Events: things that happened (a camera went offline, a forward started, a command was refused).

Workers :meth:`EventBus.emit` without ever blocking; each subscriber (MQTT) reads its own bounded
queue on its own thread. A subscriber that falls behind loses the oldest events, counted.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args

__all__ = [
    "EVENT_KINDS",
    "Event",
    "EventBus",
    "EventKind",
    "EventQueue",
    "EventSink",
    "WorkerEventKind",
]

WorkerEventKind = Literal[
    "camera_online", "camera_offline", "recording_stopped", "recording_resumed"
]
"""The events a camera's worker may raise; the supervisor raises the others itself."""
EventKind = Literal[
    WorkerEventKind,
    "camera_worker_restarted",
    "storage_evicted",
    "storage_error",
    "storage_recovered",
    "seal_error",
    "forward_started",
    "forward_stopped",
    "command_rejected",
    "compliance_broken",
    "compliance_restored",
    "tamper_detected",
    "tamper_cleared",
    "privacy_mask_missing",
    "privacy_mask_restored",
    "forward_suspended",
    "forward_resumed",
    "analysis_relearned",
    "snapshot_taken",
]
"""Every kind of event the daemon publishes (``P/events``): the MQTT contract, checked by mypy
at each ``emit``. New kinds may be added; none is renamed or removed."""
EVENT_KINDS: frozenset[str] = frozenset(get_args(WorkerEventKind)) | frozenset(
    k for k in get_args(EventKind) if isinstance(k, str)
)


class EventSink(Protocol):
    """What raises events: the daemon's bus, or a camera worker's channel to it."""

    def emit(self, kind: EventKind, *, camera: str | None = None, **fields: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    time: float
    camera: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


class EventQueue:
    def __init__(self, maxlen: int) -> None:
        self._events: deque[Event] = deque(maxlen=maxlen)
        self._cond = threading.Condition()
        self.dropped = 0

    def put(self, event: Event) -> None:
        with self._cond:
            if len(self._events) == self._events.maxlen:
                self.dropped += 1
            self._events.append(event)
            self._cond.notify()

    def wait(self, timeout: float) -> None:
        """Return when an event is waiting, or after ``timeout``."""
        with self._cond:
            if not self._events:
                self._cond.wait(timeout)

    def peek(self) -> Event | None:
        with self._cond:
            return self._events[0] if self._events else None

    def pop(self) -> None:
        with self._cond:
            if self._events:
                self._events.popleft()

    def __len__(self) -> int:
        return len(self._events)


class EventBus:
    def __init__(self) -> None:
        self._queues: tuple[EventQueue, ...] = ()
        self._lock = threading.Lock()

    def subscribe(self, maxlen: int = 1000) -> EventQueue:
        queue = EventQueue(maxlen)
        with self._lock:
            self._queues = (*self._queues, queue)
        return queue

    def emit(self, kind: EventKind, *, camera: str | None = None, **fields: Any) -> None:
        event = Event(kind=kind, time=time.time(), camera=camera, fields=fields)
        for queue in self._queues:
            queue.put(event)
