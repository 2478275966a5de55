"""Fan-out: one camera session feeds every consumer, each behind its own bounded queue.

The source thread calls :meth:`Stream.publish` once per packet; the packet is appended to every
reader's queue and each reader's own thread runs its consumer. When a reader's queue is full, the
packet is dropped for that reader alone and the reader skips the rest of the GOP, resuming at the
next keyframe, so a slow or dead consumer never blocks the source or the other consumers.

A reader may also take a packet at once, on the source thread, when its queue is empty and its
consumer is idle and can handle the packet without blocking (the forwarder, when the uplink
socket has room): that saves waking the reader's thread for every packet.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gateway.host.threads import name_native_thread
from gateway.media.gop import GopCache
from gateway.media.packet import Packet, SessionInfo

__all__ = ["Consumer", "Reader", "ReaderStats", "Stream"]

log = logging.getLogger(__name__)

TICK = 0.5
"""Seconds between :meth:`Consumer.on_tick` calls when no packet arrives."""


class Consumer(Protocol):
    """What a reader drives. All methods run on the reader's own thread."""

    name: str

    def on_session_start(self, info: SessionInfo) -> None: ...

    def on_packet(self, packet: Packet) -> None: ...

    def on_session_end(self, reason: str) -> None: ...

    def on_tick(self) -> None:
        """Called at least every :data:`TICK` seconds, for timers."""
        ...

    def on_close(self) -> None:
        """Last call: the reader is being removed or the daemon is stopping."""
        ...


@dataclass(slots=True)
class ReaderStats:
    delivered: int = 0
    dropped_packets: int = 0
    dropped_frames: int = 0
    """Video packets dropped because the queue was full (whole GOPs)."""
    errors: int = 0
    queued_bytes: int = 0


@dataclass(frozen=True, slots=True)
class _Start:
    info: SessionInfo


@dataclass(frozen=True, slots=True)
class _End:
    reason: str


_Item = Packet | _Start | _End


class Reader:
    """One consumer's queue and thread."""

    def __init__(
        self,
        consumer: Consumer,
        *,
        camera_id: str,
        max_seconds: float,
        max_bytes: int,
        batch: float = 0.0,
        inline: Callable[[Packet], bool] | None = None,
    ) -> None:
        self.consumer = consumer
        self.batch = batch
        """Seconds to gather packets before waking the consumer (0: wake at each packet).
        Waking a thread costs more than handling a packet; a consumer that is not in a hurry
        (the recorder) takes its packets a few at a time."""
        self.inline = inline
        """Called on the source thread when nothing is queued and the consumer is idle; it
        handles the packet without blocking and returns True, or returns False to have it
        queued. Saves waking the reader's thread for every packet."""
        self._idle = threading.Lock()
        """Held while the consumer runs, on either thread: one call at a time."""
        self.camera_id = camera_id
        self.max_seconds = max_seconds
        self.max_bytes = max_bytes
        self.stats = ReaderStats()
        self._queue: deque[_Item] = deque()
        self._oldest: deque[float] = deque()
        self._cond = threading.Condition()
        self._resync = True
        self._joining = True
        """Waiting for the first keyframe of a session: skipped packets are not drops."""
        self._stopping = False
        self._drain = True
        self._last_drop_log = 0.0
        self._busy_since: float | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"{camera_id}/{consumer.name}", daemon=True
        )

    @property
    def name(self) -> str:
        return self.consumer.name

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stuck_for(self) -> float:
        """Seconds the consumer has been inside one call (0 when it is not in a call)."""
        since = self._busy_since
        return 0.0 if since is None else time.monotonic() - since

    def start(self) -> None:
        self._thread.start()

    def offer(self, packet: Packet) -> None:
        """Hand a packet over: at once through ``inline`` when nothing is queued and the
        consumer is idle, else queued, or dropped (with the rest of its GOP) if the reader is
        behind."""
        with self._cond:
            if self._stopping:
                return
            if self._resync and not packet.starts_gop:
                if not self._joining:
                    self._count_drop(packet)
                return
            now = self.inline is not None and not self._queue and self._idle.acquire(False)
        if now and self._call_inline(packet):
            return
        with self._cond:
            if self._stopping:
                return
            if not self._has_room(packet):
                self._count_drop(packet)
                self._resync = self._resync or packet.is_video
                return
            self._resync = self._joining = False
            self._queue.append(packet)
            self._oldest.append(packet.received)
            self.stats.queued_bytes += len(packet.data)
            if not self.batch:
                self._cond.notify()

    def _call_inline(self, packet: Packet) -> bool:
        """Run ``inline`` on this (the source's) thread; the caller holds ``_idle``."""
        assert self.inline is not None  # noqa: S101 - for mypy: the caller checked it
        try:
            handled = self.inline(packet)
            if handled:
                self.stats.delivered += 1
        except Exception:
            self.stats.errors += 1
            log.exception("camera %s: %s failed", self.camera_id, self.consumer.name)
            handled = True  # the packet is lost, not retried
        finally:
            self._idle.release()
        if handled and (self._resync or self._joining):  # set only at a session start
            with self._cond:
                self._resync = self._joining = False
        return handled

    def control(self, item: _Start | _End) -> None:
        """Queue a session event; these are never dropped."""
        with self._cond:
            if self._stopping:
                return
            self._queue.append(item)
            if isinstance(item, _Start):
                self._resync = self._joining = True
            self._cond.notify()

    def stop(self, *, drain: bool = True) -> None:
        """Ask the thread to finish (after the queued items if ``drain``) and call on_close."""
        with self._cond:
            self._stopping = True
            self._drain = drain
            if not drain:
                self._queue.clear()
                self._oldest.clear()
                self.stats.queued_bytes = 0
            self._cond.notify()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _has_room(self, packet: Packet) -> bool:
        if not self._oldest:
            return True
        if self.stats.queued_bytes + len(packet.data) > self.max_bytes:
            return False
        return packet.received - self._oldest[0] <= self.max_seconds

    def _count_drop(self, packet: Packet) -> None:
        self.stats.dropped_packets += 1
        if packet.is_video:
            self.stats.dropped_frames += 1
        now = time.monotonic()
        if now - self._last_drop_log >= 1.0:
            self._last_drop_log = now
            log.warning(
                "camera %s: %s is behind; dropping until the next keyframe (%d frames dropped)",
                self.camera_id,
                self.consumer.name,
                self.stats.dropped_frames,
            )

    def _take(self) -> list[_Item]:
        """Everything queued, after waiting for a batch or for the first item. When it returns
        items, ``_idle`` is held: no inline call can pass them before they are handled."""
        with self._cond:
            if self._stopping:
                pass  # take what is left and finish
            elif self.batch:
                self._cond.wait(self.batch)  # session events and a stop still wake it at once
            elif not self._queue:
                self._cond.wait(TICK)
            items = list(self._queue)
            if items:
                # An inline call holds _idle without _cond and only then takes _cond: no cycle.
                self._idle.acquire()
            self._queue.clear()
            self._oldest.clear()
            self.stats.queued_bytes = 0
            return items

    def _run(self) -> None:
        name_native_thread()
        last_tick = time.monotonic()
        while True:
            items = self._take()
            if items:
                try:
                    for item in items:
                        self._call(item)
                finally:
                    self._idle.release()
            elif self._stopping:
                break
            now = time.monotonic()
            if now - last_tick >= TICK:
                last_tick = now
                with self._idle:
                    self._call(None)
        self._call_close()

    def _call(self, item: _Item | None) -> None:
        """Run the consumer on one item (None: a tick); the caller holds ``_idle``."""
        self._busy_since = time.monotonic()
        try:
            if item is None:
                self.consumer.on_tick()
            elif isinstance(item, Packet):
                self.consumer.on_packet(item)
                self.stats.delivered += 1
            elif isinstance(item, _Start):
                self.consumer.on_session_start(item.info)
            else:
                self.consumer.on_session_end(item.reason)
        except Exception:
            self.stats.errors += 1
            log.exception("camera %s: %s failed", self.camera_id, self.consumer.name)
        self._busy_since = None

    def _call_close(self) -> None:
        try:
            with self._idle:
                self.consumer.on_close()
        except Exception:
            self.stats.errors += 1
            log.exception("camera %s: %s failed to close", self.camera_id, self.consumer.name)


class Stream:
    """The fan-out point of one camera. The source thread is its only publisher."""

    def __init__(self, camera_id: str, *, gop_cache_bytes: int = 0) -> None:
        self.camera_id = camera_id
        self._readers: tuple[Reader, ...] = ()
        self._lock = threading.Lock()
        self._session: SessionInfo | None = None
        self._keyed = False
        self._gop = GopCache(gop_cache_bytes) if gop_cache_bytes else None

    @property
    def readers(self) -> tuple[Reader, ...]:
        return self._readers

    @property
    def session(self) -> SessionInfo | None:
        return self._session

    def add_reader(
        self,
        consumer: Consumer,
        *,
        max_seconds: float,
        max_bytes: int,
        replay_gop: bool = False,
        batch: float = 0.0,
        inline: Callable[[Packet], bool] | None = None,
    ) -> Reader:
        """Attach a consumer; it joins the current session at its next keyframe, or at once
        from the last keyframe with ``replay_gop`` if this stream keeps a GOP cache."""
        reader = Reader(
            consumer,
            camera_id=self.camera_id,
            max_seconds=max_seconds,
            max_bytes=max_bytes,
            batch=batch,
            inline=inline,
        )
        with self._lock:
            if self._session is not None:
                reader.control(_Start(self._session))
                if replay_gop and self._gop is not None:
                    for packet in self._gop.packets():
                        reader.offer(packet)
            self._readers = (*self._readers, reader)
        reader.start()
        return reader

    def remove_reader(self, reader: Reader, *, drain: bool = False) -> None:
        with self._lock:
            self._readers = tuple(r for r in self._readers if r is not reader)
        reader.stop(drain=drain)

    def start_session(self, info: SessionInfo) -> None:
        with self._lock:
            self._session = info
            self._keyed = False
            if self._gop is not None:
                self._gop.clear()
            for reader in self._readers:
                reader.control(_Start(info))

    def publish(self, packet: Packet) -> None:
        if not self._keyed:
            if not packet.starts_gop:
                return  # a session starts at its first keyframe, for every reader
            self._keyed = True
        if self._gop is None:
            for reader in self._readers:
                reader.offer(packet)
            return
        with self._lock:  # a reader joining now gets the cache and then this packet, once
            self._gop.add(packet)
            for reader in self._readers:
                reader.offer(packet)

    def end_session(self, reason: str) -> None:
        with self._lock:
            if self._session is None:
                return
            self._session = None
            if self._gop is not None:
                self._gop.clear()
            for reader in self._readers:
                reader.control(_End(reason))

    def close(self, *, timeout: float) -> bool:
        """End the session, let every reader drain and close; True if all finished in time."""
        self.end_session("stopping")
        with self._lock:
            readers, self._readers = self._readers, ()
        for reader in readers:
            reader.stop(drain=True)
        deadline = time.monotonic() + timeout
        return all(r.join(max(0.0, deadline - time.monotonic())) for r in readers)
