"""The forwarder: a fan-out consumer that pushes one camera to the centre by stream copy.

Each push session opens the uplink (:func:`~gateway.push.transport.open_uplink`) and speaks
RTSP or RTMP over it (:mod:`gateway.push.rtsp`, :mod:`gateway.push.rtmp`). Every push
starts on a keyframe carrying its parameter sets: the forwarder keeps the current GOP and replays
it on (re)connection, so the centre has a picture at once instead of waiting up to a GOP. When the
centre is down, refuses us or the link breaks, it retries quickly (0.2 s, then at most every
second); refused credentials are retried slowly and logged once.
"""

from __future__ import annotations

import dataclasses
import logging
import time

from gateway.backoff import Backoff
from gateway.forward.target import UplinkTarget
from gateway.media.gop import GopCache
from gateway.media.packet import Packet, SessionInfo, Track
from gateway.media.params import with_parameter_sets
from gateway.push.publisher import Publisher, PushUrl
from gateway.push.transport import PushError, open_uplink
from gateway.telemetry.state import ForwardState, ForwardStatus

__all__ = ["FORWARD_QUEUE_BYTES", "GOP_CACHE_BYTES", "Pusher", "open_publisher"]

log = logging.getLogger(__name__)

GOP_CACHE_BYTES = 8 * 1024 * 1024
FORWARD_QUEUE_BYTES = 32 * 1024 * 1024


def open_publisher(target: UplinkTarget, tracks: tuple[Track, ...]) -> Publisher:
    """Connect to the centre and return the protocol's publisher (not started yet)."""
    url = PushUrl.parse(target.push_url)
    sock = open_uplink(
        url.host,
        url.port,
        tls=target.tls if url.secure else None,
        timeout=target.connect_timeout,
    )
    if url.scheme.startswith("rtsp"):
        from gateway.push.rtsp.publisher import RtspPublisher

        return RtspPublisher(sock, url, tracks, timeout=target.connect_timeout)
    from gateway.push.rtmp.publisher import RtmpPublisher

    return RtmpPublisher(sock, url, tracks, timeout=target.connect_timeout)


class Pusher:
    """Consumer named ``forwarder``. Runs on its reader's thread, except :meth:`try_now`,
    which the camera's thread calls and which never blocks."""

    name = "forwarder"

    def __init__(self, camera_id: str, target: UplinkTarget, status: ForwardStatus) -> None:
        self.camera_id = camera_id
        self.target = target
        self.status = status
        self._tracks: tuple[Track, ...] = ()
        self._gop = GopCache(GOP_CACHE_BYTES)
        self._publisher: Publisher | None = None
        self._sent_before = 0
        self._retry_at = 0.0
        self._backoff = Backoff(initial=0.2, maximum=1.0)
        self._auth_backoff = Backoff(initial=5.0, maximum=60.0)
        self._connections = 0
        self._warned: set[str] = set()
        self._broken: PushError | None = None
        """A failure met on the camera's thread, handled on the forwarder's (closing waits)."""

    # -- Consumer ------------------------------------------------------------------------------

    def on_session_start(self, info: SessionInfo) -> None:
        self._disconnect()
        self._tracks = info.tracks
        self._gop.clear()
        self._set("connecting", None)

    def try_now(self, packet: Packet) -> bool:
        """On the camera's thread: send at once while live and nothing is waiting, without
        blocking. False: the packet goes through the queue to this consumer's thread instead."""
        publisher = self._publisher
        if publisher is None or self._broken is not None or not publisher.ready:
            return False
        self._gop.add(packet)
        try:
            publisher.send(self._prepared(packet), wait=False)
        except PushError as exc:
            self._broken = exc
        return True

    def on_packet(self, packet: Packet) -> None:
        if self._broken is not None:
            self._fail(self._broken)
        self._gop.add(packet)
        if self._publisher is None:
            if time.monotonic() >= self._retry_at and self._gop.packets():
                self._connect()
            return
        self._send(packet)

    def on_session_end(self, reason: str) -> None:
        self._disconnect()
        self._gop.clear()
        self._tracks = ()
        self._set("connecting", "waiting for the camera")

    def on_tick(self) -> None:
        if self._broken is not None:
            self._fail(self._broken)
        publisher = self._publisher
        if publisher is None:
            if self._tracks and self._gop.packets() and time.monotonic() >= self._retry_at:
                self._connect()  # no packet came to trigger it (a very low frame rate)
            return
        try:
            publisher.poll()
        except PushError as exc:
            self._fail(exc)
            return
        self.status.bytes_sent = self._sent_before + publisher.bytes_sent

    def on_close(self) -> None:
        self._disconnect()
        self._set("off", None)

    # -- connection ----------------------------------------------------------------------------

    def _connect(self) -> None:
        self._set("connecting", self.status.error)
        try:
            publisher = open_publisher(self.target, self._tracks)
        except PushError as exc:
            self._fail(exc)
            return
        self._publisher = publisher
        try:
            publisher.start()
            for track in publisher.skipped:
                if track.codec not in self._warned:
                    self._warned.add(track.codec)
                    log.warning(
                        "camera %s: %s cannot be sent to %s; forwarding without it",
                        self.camera_id,
                        track.codec,
                        self.target.display,
                    )
            for cached in self._gop.packets():
                publisher.send(self._prepared(cached))
        except PushError as exc:
            self._fail(exc)
            return
        self._connections += 1
        if self._connections > 1:
            self.status.reconnects += 1
        self._backoff.reset()
        self._auth_backoff.reset()
        self._set("live", None)
        log.info("camera %s: forwarding live to %s", self.camera_id, self.target.display)

    def _send(self, packet: Packet) -> None:
        assert self._publisher is not None  # noqa: S101 - for mypy: connected before sending
        try:
            self._publisher.send(self._prepared(packet))
        except PushError as exc:
            self._fail(exc)

    def _prepared(self, packet: Packet) -> Packet:
        """Keyframes carry their parameter sets, so the centre can decode from any of them."""
        if not packet.starts_gop:
            return packet
        track = self._tracks[packet.track]
        data = with_parameter_sets(packet.data, track.extradata, track.codec)
        return packet if data is packet.data else dataclasses.replace(packet, data=data)

    def _fail(self, exc: PushError) -> None:
        was_live = self.status.state == "live"
        self._disconnect()
        delay = self._auth_backoff.next() if exc.auth else self._backoff.next()
        self._retry_at = time.monotonic() + delay
        if was_live or exc.reason != self.status.error:
            log.warning(
                "camera %s: forward to %s: %s; retrying%s",
                self.camera_id,
                self.target.display,
                exc.reason,
                " slowly" if exc.auth else "",
            )
        self._set("error", exc.reason)

    def _disconnect(self) -> None:
        self._broken = None
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            publisher.close()
            self._sent_before += publisher.bytes_sent
            self.status.bytes_sent = self._sent_before

    def _set(self, state: ForwardState, error: str | None) -> None:
        if state != self.status.state:
            self.status.state = state
            self.status.since = time.time()
        self.status.error = error
